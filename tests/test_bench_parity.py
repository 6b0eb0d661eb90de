"""The parity benchmark's own logic (benchmarks/bench_parity.py): export, config mapping, features, verdict.

RecBole itself is not run here (it lives in the benchmark's own virtualenv); what is checked is
that both frameworks get the same split, the same hyper-parameters and the same features."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from engine_fixtures import write_planted_split
from sgp4sr.data.load import load_split

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parity():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_parity", ROOT / "benchmarks" / "bench_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_is_the_same_split_in_recboles_benchmark_layout(parity, tmp_path):
    write_planted_split(tmp_path / "split")
    split = load_split(tmp_path / "split")
    features = tmp_path / "features"
    features.mkdir()
    table = np.random.default_rng(0).normal(size=(split.n_items, 6)).astype(np.float32)
    table[0] = 0.0
    np.save(features / "text.npy", table)
    parity.export_split(tmp_path / "split", features, ["text"], "toy", tmp_path / "out", max_len=100)

    lines = {part: (tmp_path / "out" / f"toy.{part}.inter").read_text().splitlines()
             for part in ("train", "valid", "test")}
    assert all(rows[0] == "user_id:token\titem_id_list:token_seq\titem_id:token" for rows in lines.values())
    assert len(lines["train"]) - 1 == sum(len(s) - 1 for s in split.train_seqs)  # one row per training target
    assert len(lines["valid"]) - 1 == len(lines["test"]) - 1 == split.n_users
    back = load_split(tmp_path / "out", name="toy")  # the export reads back as the same split
    assert back.n_items == split.n_items and back.n_users == split.n_users
    assert sorted(map(len, back.train_seqs)) == sorted(map(len, split.train_seqs))

    item = (tmp_path / "out" / "toy.item").read_text().splitlines()
    assert item[0] == "item_id:token\ttext:float_seq" and len(item) == split.n_items  # header + items 1..n-1
    first = np.array(item[1].split("\t")[1].split(), dtype=np.float32)
    np.testing.assert_allclose(first, table[1], rtol=1e-5)

    parity.export_split(tmp_path / "split", None, [], "cut", tmp_path / "out", max_len=4)
    cut = (tmp_path / "out" / "cut.test.inter").read_text().splitlines()[1:]
    assert max(len(row.split("\t")[1].split()) for row in cut) == 4  # histories cut as RecBole cuts them
    assert not (tmp_path / "out" / "cut.item").exists()


def test_one_mapping_gives_recbole_our_hyper_parameters(parity):
    params = {"hidden_size": 32, "layers": 2, "heads": 4, "dropout": 0.5, "feature": "image"}
    training = {"batch_size": 128, "lr": 0.002, "patience": 7, "epochs": 9, "max_len": 20}
    cfg = parity.recbole_config("fdsa", params, training, ["image", "text"], seed=3)
    assert cfg["hidden_size"] == cfg["embedding_size"] == 32 and cfg["n_layers"] == 2
    assert cfg["hidden_dropout_prob"] == cfg["attn_dropout_prob"] == 0.5
    assert (cfg["train_batch_size"], cfg["learning_rate"], cfg["stopping_step"], cfg["epochs"],
            cfg["MAX_ITEM_LIST_LENGTH"]) == (128, 0.002, 7, 9, 20)
    assert cfg["selected_features"] == cfg["numerical_features"] == ["image"]  # FDSA reads its one feature
    assert cfg["seed"] == 3 and cfg["eval_args"]["mode"] == "full" and cfg["valid_metric"] == "Recall@5"
    sasrecf = parity.recbole_config("sasrecf", params, training, ["image", "text"], seed=1)
    assert sasrecf["selected_features"] == ["image", "text"]
    assert "selected_features" not in parity.recbole_config("sasrec", params, training, ["text"], seed=1)


def test_reduced_features_are_deterministic_principal_components(parity, tmp_path):
    rng = np.random.default_rng(0)
    table = (rng.normal(size=(50, 3)) @ rng.normal(size=(3, 12)) + 0.01 * rng.normal(size=(50, 12)))
    table[0] = 0.0
    np.save(tmp_path / "text.npy", table.astype(np.float32))
    a = np.load(parity.reduce_features(tmp_path, ["text"], 3, tmp_path / "a") / "text.npy")
    b = np.load(parity.reduce_features(tmp_path, ["text"], 3, tmp_path / "b") / "text.npy")
    assert a.shape == (50, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not a[0].any()  # padding row stays zero
    variances = a[1:].var(axis=0)
    assert (np.diff(variances) <= 0).all()  # components in order of explained variance
    assert variances.sum() > 0.99 * table[1:].var(axis=0).sum()  # three components hold a rank-3 table
    with pytest.raises(SystemExit, match="not below"):
        parity.reduce_features(tmp_path, ["text"], 12, tmp_path / "c")


def _result(framework: str, r10: float, n10: float) -> dict:
    test = {"recall@10": r10, "ndcg@10": n10, "recall@50": 0.5, "ndcg@50": 0.2}
    return {"job": {"dataset": "toy", "model": "sasrec", "framework": framework}, "test": test,
            "seconds_per_epoch": 1.0, "best_epoch": 3, "time_to_best": 3.0, "wall_seconds": 5.0,
            "peak_rss_mb": 100.0}


@pytest.mark.parametrize("ours, verdict", [(0.30, "yes"), (0.25, "**no**")])
def test_verdict_is_ours_at_least_recbole_mean_minus_one_sd(parity, capsys, ours, verdict):
    recbole = [_result("recbole", r, 0.1) for r in (0.30, 0.31, 0.29)]  # mean 0.30, sd 0.01
    parity.summarise([_result("ours", ours, 0.1), *recbole])
    row = next(line for line in capsys.readouterr().out.splitlines() if "| ours |" in line)
    assert row.rstrip().endswith(f"| {verdict} |")


def test_recbole_fix_indexes_each_float_seq_dimension_and_keeps_padding(parity):
    import torch

    class Dataset:  # the two attributes of a RecBole dataset the fix touches
        item_feat = {"text": torch.stack([torch.rand(3, 4), torch.ones(3, 4)], dim=-1)}
        field2bucketnum = {"text": 2}

    Dataset.item_feat["text"][0, :, 1] = 0.0  # the padding item: RecBole indexes it 0
    values = Dataset.item_feat["text"][..., 0].clone()
    parity._index_float_seq_dimensions(Dataset, ["text"])
    index = Dataset.item_feat["text"][..., 1]
    assert index[0].tolist() == [0, 0, 0, 0] and index[1].tolist() == index[2].tolist() == [1, 2, 3, 4]
    assert torch.equal(Dataset.item_feat["text"][..., 0], values)  # the values are untouched
    assert Dataset.field2bucketnum["text"] == 5  # an embedding row per dimension, row 0 for padding


def test_verdict_names_each_reference(parity, capsys):
    rows = [_result("ours", 0.30, 0.1), _result("recbole", 0.20, 0.05), _result("recbole-fix", 0.40, 0.2)]
    parity.summarise(rows)
    row = next(line for line in capsys.readouterr().out.splitlines() if "| ours |" in line)
    assert row.rstrip().endswith("| yes, **no** (recbole-fix) |")


def test_our_forms_follow_the_configs_model_training(parity):
    import yaml

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    forms = parity.config_train_forms(config)
    assert forms["bert4rec"] == config["model_training"]["bert4rec"]["train_form"] == "prefix"
    assert forms["sasrec"] == config["training"]["train_form"]
    config["model_training"] = {"sasrec": {"train_form": "prefix"}}
    config["training"]["train_form"] = "onepass"
    forms = parity.config_train_forms(config)
    assert (forms["sasrec"], forms["bert4rec"], forms["gru4rec"]) == ("prefix", "onepass", "onepass")


def test_a_run_resumes_from_its_state_folder_and_clears_it_when_done(parity, tmp_path, monkeypatch):
    """Our side of the benchmark keeps its checkpoints in seed<k>.state/ (a Baby run spans sessions):
    a second invocation of an unfinished run resumes there instead of starting over."""
    write_planted_split(tmp_path / "split")
    training = {"epochs": 2, "patience": 5, "batch_size": 64, "lr": 0.001, "max_len": 20, "eval_batch_size": 64,
                "weight_decay": 0.0, "valid_metric": "recall@5", "topk": [5, 10, 50], "device": "cpu",
                "train_form": "onepass"}
    job = {"framework": "ours", "dataset": "toy", "model": "gru4rec", "seed": 1, "data": str(tmp_path / "split"),
           "features": None, "features_used": [], "params": {"hidden_size": 16, "layers": 1, "dropout": 0.1},
           "training": training, "state": str(tmp_path / "seed1.state")}
    import sgp4sr.engine.run as engine_run

    real = engine_run.run_training

    def crash_after_first(epoch: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_run, "run_training", lambda spec: real(spec, on_epoch_end=crash_after_first))
    with pytest.raises(KeyboardInterrupt):
        parity.run_ours(job)
    assert (tmp_path / "seed1.state" / "checkpoint.pt").exists()
    monkeypatch.setattr(engine_run, "run_training", real)
    resumed = parity.run_ours(job)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_run"] == 2
    first = parity.run_ours({**job, "state": str(tmp_path / "fresh.state")})  # uninterrupted
    assert first["resumed_from_epoch"] == 0 and first["curve"] == pytest.approx(resumed["curve"])

    monkeypatch.chdir(tmp_path)
    result = Path("out") / "seed1.json"  # relative, as the CLI's default --out
    children = []

    def child(j, python, **kw):  # the real child runs in the result's folder (cwd=): its state path must be absolute
        children.append(j["state"])
        return 0, parity.run_ours(j)

    monkeypatch.setattr(parity, "run_child", child)
    out = parity.run_job({k: v for k, v in job.items() if k != "state"}, "python", result)
    assert children == [str((tmp_path / "out" / "seed1.state").resolve())]
    assert result.exists() and not result.with_suffix(".state").exists()
    assert out["test"] == first["test"] and "state" not in out["job"]


def test_recbole_tests_the_last_of_tied_best_epochs(parity):
    assert parity.last_best_epoch([0.1, 0.3, 0.2, 0.3, 0.25]) == 4  # RecBole's early stopping updates on >=
    assert parity.last_best_epoch([0.5, 0.1]) == 1


def test_a_resume_checkpoint_is_bound_to_its_job_and_split(parity, tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.train.inter").write_text("a\n")
    job = {"export": str(tmp_path), "dataset": "toy", "model": "sasrec", "seed": 1, "training": {"lr": 0.001}}
    same = parity.run_identity({**job, "state": "anywhere"})
    assert parity.run_identity(job) == same
    assert parity.run_identity({**job, "training": {"lr": 0.002}}) != same
    (folder / "toy.train.inter").write_text("b\n")
    assert parity.run_identity(job) != same
