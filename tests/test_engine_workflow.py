"""The train rule plans the right inputs and command for ID-only, feature and SGP4SR runs (dry run)."""

from __future__ import annotations


import pytest
import yaml

from workflow_fixtures import ROOT, copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow

TARGETS = ("results/demo/runs/sasrec/lr~0.0005/seed1/metrics.json",
           "results/demo/runs/sgp4sr/wo_mul+H~5/seed2/metrics.json")


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> str:
    work = copy_workflow(tmp_path_factory.mktemp("wf"))
    result = run_snakemake(work, "-n", "-p", "--cores", "2", "--config", "slurm_gpu=True", "--", *TARGETS,
                           timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _job(plan: str, target: str) -> str:
    """The dry-run block of the train job that writes ``target``."""
    blocks = plan.split("rule train:")[1:]
    return next(b for b in blocks if target in b)


def test_id_only_run_reads_only_the_split(plan):
    job = _job(plan, TARGETS[0])
    assert "results/demo/data/valid.inter" in job
    assert "features/" not in job.split("output:")[0] and "graphs/" not in job.split("output:")[0]
    assert '"lr": 0.0005' in job  # the variant's override is in the resolved params
    assert "--model sasrec" in job and "--seed 1" in job and "slurm_extra=--gres=gpu:1" in job


def test_sgp4sr_wo_mul_reads_fused_graphs_with_the_variant_settings(plan):
    inputs = _job(plan, TARGETS[1]).split("output:")[0]
    assert "results/demo/graphs/cooccurrence.npz" in inputs
    assert "results/demo/graphs/clean/fused_H5_m2.5_o0.3.npz" in inputs
    k = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["datasets"]["demo"]["graphs"]["centres"]
    assert f"fused_centres_k{k}_s2026.npz" in inputs  # the dataset's k, untouched by the variant
    assert "results/demo/features/image.npy" in inputs and "image_H" not in inputs
