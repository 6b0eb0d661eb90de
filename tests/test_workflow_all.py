"""`snakemake all` end to end on a tiny demo config: every stage, every table and figure, the HTML report.

The config is the default one scaled down (a 200-user shop, two models, one
ablation, two seeds, two epochs) so the whole DAG — demo data, CLIP and
MiniLM features, noise variants, graphs, centres, training, tuning
checkpoint, tables, figures — runs in a few minutes on two cores.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_fixtures import copy_workflow, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

TINY = {
    "run": {"datasets": ["demo"], "models": ["sgp4sr", "sasrec"], "ablations": ["wo_cip"], "seeds": [1, 2]},
    "training": {"epochs": 2, "patience": 2, "batch_size": 128},
    "models": {"sgp4sr": {"hidden_size": 16, "heads": 2}, "sasrec": {"hidden_size": 16, "heads": 2}},
    "experiments": {
        "ablation_seeds": [1],
        "noise": {"ratios": [0.0, 0.5], "baselines": [], "seeds": [1]},
        "centres": {"k": [0, 4], "seeds": [1]},
        "tuning": {"enabled": True, "seed": 1, "subset": {"lr": [0.001, 0.005]}},  # off in the demo's default
    },
    "datasets": {"demo": {
        "demo": {"n_users": 200, "n_items": 60, "n_categories": 3, "min_length": 5, "max_length": 10,
                 "image_size": 24},
        "graphs": {"knn_k": 3, "mu_m": 2.0, "mu_o": 0.5, "centres": 4},
        "noise_ratios": [0.5],
    }},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("all"))
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    run = run_snakemake(work, "--cores", "2", "all", "--configfile", str(work / "tiny.yaml"), timeout=1500)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-6000:]
    report = run_snakemake(work, "--report", str(work / "report.html"), "--configfile", str(work / "tiny.yaml"),
                           timeout=600)
    assert report.returncode == 0, report.stdout[-4000:] + report.stderr[-4000:]
    return work


def test_every_table_and_figure_is_built(finished):
    report = finished / "results" / "report"
    for stem in ("table1_stats", "table2_overall", "table3_ablation", "tuning"):
        for ext in ("csv", "md", "tex"):
            assert (report / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"
    for stem in ("figure3_noise", "figure4_centres"):
        for ext in ("png", "pdf"):
            assert (report / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"
    assert (finished / "report.html").stat().st_size > 10_000


def test_table2_holds_both_models_from_their_runs(finished):
    table = (finished / "results" / "report" / "table2_overall.md").read_text()
    assert "sgp4sr" in table.lower() and "sasrec" in table.lower()
    for model in ("sgp4sr", "sasrec"):
        for seed in (1, 2):
            run = finished / "results" / "demo" / "runs" / model / "default" / f"seed{seed}"
            assert (run / "metrics.json").exists() and (run / "ranks.parquet").exists()
            ranks = pd.read_parquet(run / "ranks.parquet")
            assert len(ranks) > 100 and (ranks["test_rank"] >= 1).all()


def test_every_job_left_a_log_and_a_benchmark(finished):
    logs = list((finished / "logs").rglob("*.log"))
    benches = list((finished / "logs" / "benchmarks").rglob("*.tsv"))
    assert len(logs) >= 15 and len(benches) >= 15
