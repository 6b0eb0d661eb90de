"""Planning: which runs each experiment requests, from the config alone."""

from __future__ import annotations

import copy

import pytest
import yaml

from sgp4sr.config import validate_config
from sgp4sr.report import plan

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture
def config():
    return {
        "run": {"datasets": ["toy"], "models": ["sgp4sr", "sasrec", "sasrecf"], "ablations": ["wo_coo", "wo_cip"],
                "seeds": [1, 2]},
        "training": {"lr": 0.001},
        "datasets": {"toy": {"source": "demo", "graphs": {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.3, "centres": 4},
                             "modalities": {"image": {"encoder": "clip"}, "text": {"encoder": "sentence"}}}},
        "experiments": {"noise": {"ratios": [0.5], "baselines": ["sasrecf", "fdsa"], "seeds": None},
                        "centres": {"k": [0, 4, 8]},
                        "tuning": {"subset": {"lr": [0.001, 0.01], "k": [4, 8]}}},
    }


def test_canonical_variant_drops_defaults_and_maps_k0(config):
    assert plan.canonical_variant(config, "toy", lr=0.001, k=4) == "default"
    assert plan.canonical_variant(config, "toy", k=0) == "wo_cip"
    assert plan.canonical_variant(config, "toy", mu_o=0.1, lr=0.01) == "lr~0.01+mu_o~0.1"
    assert plan.canonical_variant(config, "toy", fset="image@noise0.5") == "fset~image@noise0.5"
    # a key the config leaves unset is never dropped (its default lives in another stage)
    del config["datasets"]["toy"]["graphs"]["centres"]
    assert plan.canonical_variant(config, "toy", k=4) == "k~4"


def test_runs_per_experiment(config):
    assert len(plan.table2_runs(config)) == 3 * 2
    assert {v for _, _, v, _ in plan.table3_runs(config)} == {"default", "wo_coo", "wo_cip"}
    noise = plan.noise_runs(config)  # fdsa is not in run.models: absent; figure seeds default to the first
    assert sorted({(m, v) for _, m, v, _ in noise}) == [
        ("sasrecf", "default"), ("sasrecf", "fset~image@noise0.5"), ("sgp4sr", "default"),
        ("sgp4sr", "fset~image@noise0.5")]
    assert {s for *_, s in noise} == {1}
    assert [v for _, _, v, _ in plan.centre_runs(config)] == ["wo_cip", "default", "k~8"]
    assert plan.tuning_points(config, "toy") == ["default", "k~8", "lr~0.01", "lr~0.01+k~8"]
    assert plan.tuned_runs(config, "toy", "lr~0.01") == [
        ("toy", "sgp4sr", "lr~0.01", 1), ("toy", "sgp4sr", "lr~0.01", 2), ("toy", "sgp4sr", "default", 1),
        ("toy", "sgp4sr", "default", 2)]


def test_ablation_seeds(config):
    config["experiments"]["ablation_seeds"] = [2]
    assert {s for *_, s in plan.table3_runs(config)} == {2}
    assert {s for *_, s in plan.table2_runs(config)} == {1, 2}


def test_dataset_noise_ratios_override(config):
    config["datasets"]["toy"]["noise_ratios"] = [0.1, 0.3]
    assert plan.noise_ratios(config, "toy") == [0.0, 0.1, 0.3]


def test_no_noise_runs_without_the_modality(config):
    del config["datasets"]["toy"]["modalities"]["image"]
    assert plan.noise_runs(config) == []
    assert "results/report/figure3_noise.png" not in plan.report_targets(config)


def test_targets_follow_the_config(config):
    targets = plan.report_targets(config)
    assert "results/report/table2_overall.tex" in targets and "results/report/figure3_noise.pdf" in targets
    assert "results/report/tuning/toy/grid.csv" in targets
    no_proposed = copy.deepcopy(config)
    no_proposed["run"]["models"] = ["sasrec"]
    targets = plan.report_targets(no_proposed)
    assert "results/report/table2_overall.md" in targets
    assert not [t for t in targets if "table3" in t or "figure" in t or "tuning" in t]
    off = copy.deepcopy(config)
    off["experiments"].update(tables=["table1"], noise={"enabled": False}, centres={"enabled": False},
                              tuning={"enabled": False})
    assert {t.rsplit(".", 1)[0] for t in plan.report_targets(off)} == {"results/report/table1_stats"}


def test_bad_search_key(config):
    config["experiments"]["tuning"]["subset"] = {"fset": ["clean"]}
    with pytest.raises(ValueError, match="cannot search over"):
        plan.tuning_points(config, "toy")


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_plan(name):
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate_config(config)
    targets = plan.report_targets(config)
    assert any(t.endswith("table2_overall.csv") for t in targets)
    for ds in plan.datasets(config):
        assert plan.tuning_points(config, ds)


def test_rule_helpers(config):
    from types import SimpleNamespace

    from sgp4sr.report.rules import ReportRules

    config["datasets"]["toy"]["paper_stats"] = {"users": 5}
    rules = ReportRules(config)
    wc = SimpleNamespace(dataset="toy")
    assert rules.output_prefix(wc, ["results/report/table2_overall.csv", "x.md"]) == "results/report/table2_overall"
    assert rules.table1_paper(wc) == '{"toy": {"users": 5}}'
    inputs = rules.table2_inputs(wc)  # 6 model runs + popularity + the oracle (toy is a demo dataset)
    assert len(inputs) == 2 * 8 and rules.table2_metrics(wc).count("metrics.json") == 8
    assert "results/toy/runs/oracle/default/seed1/metrics.json" in inputs
    config["experiments"] = {**config.get("experiments", {}), "bounds": False}
    assert len(ReportRules(config).table2_inputs(wc)) == 2 * 6
    assert rules.table3_variants(wc) == "default wo_coo wo_cip"
    assert rules.centre_default_k(wc) == '{"toy": 4}'
    assert rules.valid_metric(wc) == "recall@5"
    assert len(rules.grid_inputs(wc)) == 4
