"""The train and graph stages' rule helpers: effective params and inputs, so a changed setting
reruns exactly the runs whose computation it changes (issue: rerun exactly what changed)."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from sgp4sr import layout
from sgp4sr.config import validate_config
from sgp4sr.engine.resources import count_rows, estimate_training, feature_dims
from sgp4sr.engine.rules import TrainRuleError, TrainRules
from sgp4sr.graphs.rules import GraphRuleError, GraphRules
from sgp4sr.report import plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def demo_config():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_config(config)
    return config


def planned_runs(config):
    """Every (dataset, model, variant) the demo's experiments train, before tuning picks a winner."""
    runs = plan.table2_runs(config) + plan.table3_runs(config) + plan.noise_runs(config) + plan.centre_runs(config)
    for ds in plan.datasets(config):
        runs += plan.tuning_grid_runs(config, ds)
    return sorted({(ds, m, v) for ds, m, v, _ in runs})


def job_keys(config, runs):
    """What Snakemake compares between two executions of a train job: its params and its input files."""
    rules = TrainRules(config)
    out = {}
    for run in runs:
        p = rules.plan(*run)
        out[run] = (p.params, sorted(p.inputs.items()))
    return out


def changed_runs(before, after):
    runs = sorted(set(planned_runs(before)) & set(planned_runs(after)))
    a, b = job_keys(before, runs), job_keys(after, runs)
    return {run for run in runs if a[run] != b[run]}, runs


def test_changing_the_default_k_reruns_only_the_runs_that_use_it(demo_config):
    after = copy.deepcopy(demo_config)
    after["datasets"]["demo"]["graphs"]["centres"] = 6
    changed, runs = changed_runs(demo_config, after)
    uses_default_k = {(ds, m, v) for ds, m, v in runs
                      if m == "sgp4sr" and "k~" not in v and not {"wo_cip", "wo_c2c"} & set(v.split("+"))}
    assert changed == uses_default_k
    assert ("demo", "sgp4sr", "default") in changed
    for untouched in ("k~4", "wo_cip", "wo_c2c"):
        assert ("demo", "sgp4sr", untouched) in runs and ("demo", "sgp4sr", untouched) not in changed
    assert not any(m != "sgp4sr" for _, m, _ in changed)


def test_changing_sasrec_lr_reruns_only_sasrec(demo_config):
    after = copy.deepcopy(demo_config)
    after.setdefault("model_training", {})["sasrec"] = {"lr": 0.002}
    changed, runs = changed_runs(demo_config, after)
    assert changed == {run for run in runs if run[1] == "sasrec"} and changed


def test_changing_kmeans_or_a_modality_list_leaves_id_models_alone(demo_config):
    after = copy.deepcopy(demo_config)
    after["datasets"]["demo"]["graphs"]["kmeans"] = "best_of_3"  # centres rule params, not a run's
    changed, _ = changed_runs(demo_config, after)
    assert changed == set()
    rules = TrainRules(demo_config)
    sasrec = rules.plan("demo", "sasrec", "default")
    assert set(sasrec.params) == {"dataset", "training", "model"}
    assert all(name.startswith("split_") for name in sasrec.inputs)


def test_ablations_read_only_their_graph_files(demo_config):
    rules = TrainRules(demo_config)
    wo_cip = rules.plan("demo", "sgp4sr", "wo_cip")
    assert not any(k.startswith("centres_") for k in wo_cip.inputs)
    assert set(wo_cip.params["graphs"]) == {"knn_k", "mu_m", "mu_o"} and "centres_seed" not in wo_cip.params
    wo_cgc = rules.plan("demo", "sgp4sr", "wo_cgc")
    assert not any(k.startswith("graph_") for k in wo_cgc.inputs)
    assert wo_cgc.params["graphs"] == {"centres": 8}
    wo_c2c = rules.plan("demo", "sgp4sr", "wo_c2c")
    assert {k for k in wo_c2c.inputs if not k.startswith(("split_", "features_"))} == {"cooccurrence"}
    k4 = rules.plan("demo", "sgp4sr", "k~4")
    assert k4.params["graphs"]["centres"] == 4
    assert k4.inputs["centres_image"] == "results/demo/graphs/clean/image_centres_k4_s2026.npz"
    wo_coo = rules.plan("demo", "sgp4sr", "wo_coo")
    assert wo_coo.params["graphs"]["mu_o"] == 0.0
    assert wo_coo.inputs["graph_text"] == "results/demo/graphs/clean/text_H10_m2.5_o0.npz"
    wo_mul = rules.plan("demo", "sgp4sr", "wo_mul")
    assert "graph_fused" in wo_mul.inputs and "graph_image" not in wo_mul.inputs


def test_paths_are_the_documented_layout(demo_config):
    """The layout of docs/architecture.md, spelled once in sgp4sr.layout."""
    rules = TrainRules(demo_config)
    noisy = rules.plan("demo", "sgp4sr", "fset~image@noise0.5")
    assert noisy.inputs["features_image"] == "results/demo/features/image@noise0.5.npy"
    assert noisy.inputs["features_text"] == "results/demo/features/text.npy"
    assert noisy.inputs["graph_image"] == "results/demo/graphs/image@noise0.5/image_H10_m2.5_o0.3.npz"
    assert noisy.inputs["split_train"] == "results/demo/data/train.inter"
    assert rules.out(SimpleNamespace(dataset="demo", model="sasrec", variant="default", seed="2")) == \
        "results/demo/runs/sasrec/default/seed2"
    assert plan.run_files([("demo", "sasrec", "default", 2)]) == ["results/demo/runs/sasrec/default/seed2/metrics.json"]


def test_bad_runs_name_the_problem(demo_config):
    rules = TrainRules(demo_config)
    with pytest.raises(TrainRuleError, match="bad variant token"):
        rules.plan("demo", "sgp4sr", "oops")
    with pytest.raises(TrainRuleError, match="apply to sgp4sr only"):
        rules.plan("demo", "sasrec", "wo_cip")
    with pytest.raises(TrainRuleError, match="unknown model"):
        rules.plan("demo", "sasrex", "default")
    with pytest.raises(GraphRuleError, match="no modality 'audio'"):
        GraphRules(demo_config).feature_files("demo", "audio@noise0.5", "image")


def test_model_keys_of_a_variant_are_the_runs_hyper_parameters(demo_config):
    rules = TrainRules(demo_config)
    default = rules.plan("demo", "sgp4sr", "default")
    paper = rules.plan("demo", "sgp4sr", "beta~1+input_ln~true")
    assert paper.params["model"] == {**default.params["model"], "beta": 1.0, "input_layernorm": True}
    assert paper.inputs == default.inputs  # same graphs, same features: only the model differs
    assert {k: v for k, v in paper.params.items() if k != "model"} == \
        {k: v for k, v in default.params.items() if k != "model"}
    with pytest.raises(TrainRuleError, match=r"variant 'beta~1'.beta: unknown key"):
        rules.plan("demo", "sasrec", "beta~1")  # SASRec has no beta: caught when the DAG is planned
    with pytest.raises(TrainRuleError, match="not a bool"):
        rules.plan("demo", "sgp4sr", "input_ln~perhaps")


def test_resource_estimates_follow_the_inputs(tmp_path):
    small = estimate_training("sasrec", n_items=711, train_targets=11_549, epochs=40, max_len=20)
    big = estimate_training("sgp4sr", n_items=23_000, train_targets=278_000, feature_dims=[4096, 384],
                            hidden_size=300, centres=50, epochs=200)
    assert 1000 <= small.mem_mb <= 2000 and small.runtime_min < 30
    assert big.mem_mb > 4 * small.mem_mb and big.runtime_min > 100 * small.runtime_min
    gpu = estimate_training("sgp4sr", n_items=23_000, train_targets=278_000, feature_dims=[4096, 384],
                            hidden_size=300, centres=50, epochs=200, gpu=True)
    assert gpu.runtime_min < big.runtime_min and gpu.mem_mb == big.mem_mb
    inter = tmp_path / "train.inter"
    inter.write_text("user_id:token\titem_id_list:token_seq\titem_id:token\n" + "u\t1 2\t3\n" * 7)
    assert count_rows(inter) == 7
    np.save(tmp_path / "f.npy", np.zeros((5, 12), dtype=np.float32))
    assert feature_dims([tmp_path / "f.npy"]) == [12]


def test_layout_names_round_trip():
    settings = {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.0, "centres": 8}
    assert layout.modal_graph_name("image", settings) == "image_H10_m2.5_o0.npz"
    assert layout.graph_summary_name(settings) == "summary_H10_m2.5_o0_k8.json"
    assert layout.feature_name("text", "image@noise0.3") == "text.npy"
    assert layout.noisy_fset("image", 0.30) == "image@noise0.3"
    assert layout.noisy_modality(layout.CLEAN) is None


def test_train_jobs_are_sized_from_their_inputs_and_graph_jobs_take_one_thread(demo_config, tmp_path, monkeypatch):
    import pandas as pd

    from sgp4sr.engine.resources import UNSIZED

    monkeypatch.chdir(tmp_path)
    rules = TrainRules(demo_config)
    wc = SimpleNamespace(dataset="demo", model="sgp4sr", variant="default", seed="1")
    inputs = SimpleNamespace(**rules.plan("demo", "sgp4sr", "default").inputs)
    assert rules.mem_mb(wc, inputs, 1) == UNSIZED.mem_mb  # a dry run before the split exists
    data = tmp_path / layout.data_dir("demo")
    data.mkdir(parents=True)
    pd.DataFrame({"item_idx": range(1, 1425)}).to_parquet(data / "items.parquet")
    (data / "train.inter").write_text("header\n" + "u\t1 2\t3\n" * 20_000)
    feats = tmp_path / layout.features_dir("demo")
    feats.mkdir(parents=True)
    np.save(feats / "image.npy", np.zeros((1425, 512), np.float32))
    np.save(feats / "text.npy", np.zeros((1425, 384), np.float32))
    first, second = rules.mem_mb(wc, inputs, 1), rules.mem_mb(wc, inputs, 2)
    assert 1500 <= first <= 4000 and second == 2 * first  # a d = 64 SGP4SR on 1,400 items peaks near 2.3 GB
    assert rules.runtime(wc, inputs, 1) > 10
    sasrec = SimpleNamespace(dataset="demo", model="sasrec", variant="default", seed="1")
    assert rules.mem_mb(sasrec, SimpleNamespace(**rules.plan("demo", "sasrec", "default").inputs), 1) < first
    graphs = (ROOT / "workflow" / "rules" / "graphs.smk").read_text()
    for rule in ("modal_graph", "centres"):
        body = graphs.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
        assert "threads: 1\n" in body, rule
