"""The data rules: source -> files helpers, and the demo data stage run by Snakemake for real."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from data_fixtures import TINY_DEMO, write_benchmark_folder
from sgp4sr.data.rules import DataRuleError, DataRules, names_regex
from workflow_fixtures import ROOT, run_snakemake


CONFIG = {
    "run": {"datasets": ["tiny"]},
    "seed": 5,
    "datasets": {
        "tiny": {"source": "demo", "kcore": 3, "demo": TINY_DEMO},
        "b14": {"source": "amazon2014", "category": "Baby",
                "files": {"reviews": {"url": "http://h/d/reviews_Baby_5.json.gz", "sha256": "a" * 64, "size": 10}}},
        "p18": {"source": "amazon2018", "category": "Prime_Pantry"},
        "bench": {"source": "benchmark", "name": "toy", "path": "PATH"},
    },
}


def test_rule_helpers(tmp_path):
    cfg = json.loads(json.dumps(CONFIG))
    write_benchmark_folder(tmp_path, "toy", {"1": ["1", "2", "3", "4"]}, with_train=False)
    cfg["datasets"]["bench"]["path"] = str(tmp_path)
    rules = DataRules(cfg, "res")
    wc = SimpleNamespace
    assert rules.raw_inputs(wc(dataset="b14")) == {"reviews": "res/downloads/b14/reviews_Baby_5.json.gz",
                                                    "meta": "res/downloads/b14/meta_Baby.json.gz"}
    assert rules.raw_file("p18", "reviews") == "res/downloads/p18/Prime_Pantry_5.json.gz"
    assert rules.raw_file("tiny", "meta") == "res/downloads/tiny/meta_Demo.json.gz"
    assert rules.download_checks(wc(dataset="b14", filename="reviews_Baby_5.json.gz")) == f"--sha256 {'a' * 64} --size 10"
    with pytest.raises(DataRuleError, match="no files entry for 'x.gz'; known: reviews_Baby_5.json.gz"):
        rules.download_url(wc(dataset="b14", filename="x.gz"))
    # The published Clothing split has no train file: it is simply not an input.
    assert set(rules.benchmark_inputs(wc(dataset="bench"))) == {"valid", "test"}
    assert rules.demo_datasets == "(?:tiny)" and rules.download_datasets == "(?:b14)"
    assert names_regex([]) == "(?!)"


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(work, *args, timeout=600)


@pytest.fixture(scope="module")
def data_workflow(tmp_path_factory) -> Path:
    """A copy of the data stage's rules (common.smk + data.smk) with a tiny demo config."""
    work = tmp_path_factory.mktemp("wf")
    for name in ("workflow/rules/common.smk", "workflow/rules/data.smk", "workflow/schemas/config.schema.yaml",
                 "workflow/envs/sgp4sr.yaml"):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, work / name)
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump({k: CONFIG[k] for k in ("run", "seed")}
                                                                | {"datasets": {"tiny": CONFIG["datasets"]["tiny"]}}))
    shutil.copy(ROOT / "config" / "paper.yaml", work / "config" / "paper.yaml")
    (work / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n'
        'include: "workflow/rules/common.smk"\n'
        'include: "workflow/rules/data.smk"\n'
    )
    return work


@pytest.mark.workflow
def test_paper_config_plans_downloads(data_workflow):
    result = _snakemake(data_workflow, "-n", "--configfile", "config/paper.yaml", "--",
                        "results/baby/data/stats.json", "results/pantry/data/stats.json")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("reviews_Baby_5.json.gz", "meta_Baby.json.gz", "Prime_Pantry.csv"):  # Pantry: UniSRec's ratings
        assert f"filename={name}" in result.stdout


@pytest.mark.workflow
def test_demo_data_stage_runs(data_workflow):
    result = _snakemake(data_workflow, "--cores", "1", "results/tiny/data/stats.json")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((data_workflow / "results/tiny/data/stats.json").read_text())
    assert stats["users"] >= 0.9 * TINY_DEMO["n_users"] and stats["items"] > 0
    for rule in ("demo", "parse", "filter", "split", "stats"):
        assert (data_workflow / f"logs/data/tiny.{rule}.log").exists()
        assert (data_workflow / f"logs/benchmarks/data/tiny.{rule}.tsv").exists()
    assert (data_workflow / "resources/downloads/tiny/images").is_dir()
