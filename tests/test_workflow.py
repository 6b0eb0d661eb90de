"""The DAG plans for both shipped configs and the SLURM profile, and lints clean.

These run Snakemake as a subprocess in dry-run mode (no jobs execute), in a
temporary copy of the workflow files so no test touches the checkout's
results/ or .snakemake/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workflow_fixtures import copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, timeout=300)


def test_default_config_plans(workdir):
    result = snakemake(workdir, "-n", "--cores", "1", "all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo" in result.stdout


def test_paper_config_plans_downloads_without_network(workdir):
    # --configfile takes several values: the target must come before it.
    result = snakemake(workdir, "-n", "--cores", "1", "all", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "download" in result.stdout
    assert "reviews_Baby_5.json.gz" in result.stdout


def test_slurm_profile_plans_without_sbatch(workdir):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    result = snakemake(workdir, "-n", "--profile", str(workdir / "profiles" / "slurm"), "all")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_is_clean(workdir):
    result = snakemake(workdir, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout, result.stdout


def test_invalid_config_fails_before_planning(workdir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  datasets: [nope]\n")
    result = snakemake(workdir, "-n", "--cores", "1", "all", "--configfile", str(bad))
    assert result.returncode != 0
    assert "dataset 'nope' is not defined" in result.stdout + result.stderr


def test_iisan_run_plans_its_hidden_state_cache(workdir):
    result = snakemake(workdir, "-n", "--cores", "1", "results/demo/runs/iisan/default/seed1/metrics.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "iisan_cache" in result.stdout
    assert "results/demo/features/iisan_hidden.npz" in result.stdout
