"""The report rules run end to end on made-up runs: every target, the tuning checkpoint, the HTML report.

The runs are written beforehand, so a Snakefile with only the common helpers
and the report rules treats them as source files; the whole workflow
(training included) on a tiny config is the integration test's job.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sgp4sr.io import write_json
from sgp4sr.report import plan
from report_fixtures import ranks_with_quality, write_run
from workflow_fixtures import ROOT, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SNAKEFILE = """\
configfile: "config/test.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


rule all_report:
    input:
        report_targets(config),
    default_target: True


include: "workflow/rules/report.smk"
"""

CONFIG = {
    "run": {"datasets": ["toy"], "models": ["sasrec", "sasrecf", "sgp4sr"], "ablations": ["wo_coo", "wo_cip"],
            "seeds": [1, 2]},
    "training": {"lr": 0.001, "valid_metric": "recall@5"},
    "datasets": {"toy": {"source": "demo", "graphs": {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.3, "centres": 4},
                         "modalities": {"image": {"encoder": "clip"}, "text": {"encoder": "sentence"}},
                         "paper_stats": {"users": 400, "items": 500}}},
    "experiments": {"noise": {"ratios": [0.5], "baselines": ["sasrecf"], "seeds": [1]},
                    "centres": {"k": [0, 4, 8], "seeds": [1]},
                    "tuning": {"seed": 1, "subset": {"lr": [0.001, 0.01]}}},
}


def _quality(model: str, variant: str) -> float:
    """Planted: SGP4SR > SASRecF > SASRec; lr~0.01 is the better grid point (on validation and test)."""
    base = {"sgp4sr": 0.6, "sasrecf": 0.4, "sasrec": 0.3, "popularity": 0.1, "oracle": 0.9}[model]
    return base + (0.1 if "lr~0.01" in variant else 0.0) - (0.2 if "noise" in variant else 0.0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("report_wf")
    shutil.copytree(ROOT / "workflow", work / "workflow")
    (work / "config").mkdir()
    (work / "config" / "test.yaml").write_text(yaml.safe_dump(CONFIG))
    (work / "Snakefile").write_text(SNAKEFILE)
    write_json(work / "results/toy/data/stats.json",
               {"users": 400, "items": 499, "interactions": 4000, "avg_length": 10.0, "sparsity": 0.98})
    rng = np.random.default_rng(0)
    runs = (plan.table2_runs(CONFIG) + plan.table3_runs(CONFIG) + plan.noise_runs(CONFIG) + plan.centre_runs(CONFIG)
            + [("toy", "sgp4sr", v, s) for v in plan.tuning_points(CONFIG, "toy") for s in (1, 2)]
            + plan.bound_runs(CONFIG))
    for ds, model, variant, seed in dict.fromkeys(runs):
        quality = _quality(model, variant)
        write_run(work, ds, model, variant, seed, test_rank=ranks_with_quality(rng, 400, quality),
                  valid_rank=ranks_with_quality(rng, 400, quality))
    return work


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, timeout=300)


def test_report_rules_build_every_target_and_the_html_report(workdir):
    result = _snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    targets = plan.report_targets(CONFIG)
    assert "results/report/figure3_noise.pdf" in targets and "results/report/figure4_centres.pdf" in targets
    for target in targets:
        assert (workdir / target).stat().st_size > 0, target
    selected = yaml.safe_load((workdir / "results/report/tuning/toy/selected.json").read_text())
    assert selected["variant"] == "lr~0.01"
    tuning = pd.read_csv(workdir / "results/report/tuning.csv")
    assert set(tuning.variant) == {"lr~0.01", "default"} and set(tuning.n_seeds) == {2}
    table2 = (workdir / "results/report/table2_overall.md").read_text()
    assert "**" in table2 and "SASRecF" in table2 and "Oracle†" in table2 and "Popularity†" in table2
    report = _snakemake(workdir, "--report", str(workdir / "report.html"))
    assert report.returncode == 0, report.stdout + report.stderr
    assert (workdir / "report.html").stat().st_size > 10_000

