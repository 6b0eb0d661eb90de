"""Whole runs on a small planted dataset: learning beats popularity, determinism, crash + resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine_fixtures import N_USERS, write_planted_split
from sgp4sr.cli.main import main
from sgp4sr.engine.evaluate import metrics_from_ranks, ranks_from_scores
from sgp4sr.engine.run import RunSpec, evaluate_checkpoint, run_training

TRAINING = {"epochs": 4, "patience": 3, "batch_size": 32, "eval_batch_size": 64, "lr": 0.005, "max_len": 8,
            "topk": [5, 10], "valid_metric": "recall@10"}
SASREC = {"hidden_size": 16, "layers": 1, "heads": 2, "dropout": 0.1}


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("planted")
    write_planted_split(folder)
    return folder


def _spec(split_dir: Path, out: Path, model: str = "sasrec", form: str = "onepass", seed: int = 3) -> RunSpec:
    params = SASREC if model == "sasrec" else {"hidden_size": 16, "dropout": 0.1}
    return RunSpec(data=split_dir, out=out, model=model, seed=seed, training={**TRAINING, "train_form": form},
                   model_params=params, threads=1)


def popularity_metrics(split_dir: Path) -> dict[str, float]:
    """Rank every test target by training popularity (the baseline a model must beat)."""
    from sgp4sr.data.load import load_split

    split = load_split(split_dir)
    counts = np.bincount(np.concatenate(split.train_seqs + [split.valid_items]), minlength=split.n_items)
    scores = torch.tensor(counts, dtype=torch.float32).repeat(split.n_users, 1)
    ranks = ranks_from_scores(scores, torch.from_numpy(split.test_items)).numpy()
    return metrics_from_ranks(ranks, [5, 10])


@pytest.fixture(scope="module")
def sasrec_run(split_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "sasrec"
    return out, run_training(_spec(split_dir, out))


def test_run_writes_outputs_and_beats_popularity(sasrec_run, split_dir):
    out, metrics = sasrec_run
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.pt", "ranks.parquet"]
    assert json.loads((out / "metrics.json").read_text())["test"] == pytest.approx(metrics["test"])
    ranks = pd.read_parquet(out / "ranks.parquet")
    assert list(ranks.columns) == ["user_idx", "valid_rank", "test_rank"] and len(ranks) == N_USERS
    assert metrics_from_ranks(ranks["test_rank"].to_numpy(), [10])["recall@10"] == metrics["test"]["recall@10"]
    assert len(metrics["curve"]) == metrics["epochs_run"] >= 1 and metrics["seconds_per_epoch"] > 0
    assert metrics["config"]["training"]["max_len"] == TRAINING["max_len"]
    popular = popularity_metrics(split_dir)
    assert metrics["test"]["recall@10"] > popular["recall@10"] + 0.2, (metrics["test"], popular)


def test_same_seed_same_metrics(sasrec_run, split_dir, tmp_path):
    _, first = sasrec_run
    again = run_training(_spec(split_dir, tmp_path / "again"))
    assert again["test"] == first["test"]
    assert [h["valid"] for h in again["curve"]] == [h["valid"] for h in first["curve"]]


class Crash(RuntimeError):
    pass


def _crash_after_first(epoch: int) -> None:
    if epoch == 1:
        raise Crash("simulated kill after epoch 1")


def test_killed_run_resumes_to_the_same_result(sasrec_run, split_dir, tmp_path):
    _, uninterrupted = sasrec_run
    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        run_training(_spec(split_dir, out), on_epoch_end=_crash_after_first)
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    snap = evaluate_checkpoint(_spec(split_dir, out))  # watching an unfinished run changes nothing
    assert snap["epochs_done"] == 1 and snap["valid"] == uninterrupted["curve"][0]["valid"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]
    resumed = run_training(_spec(split_dir, out))
    assert resumed["resumed_from_epoch"] == 1
    assert resumed["test"] == uninterrupted["test"]
    assert [h["valid"] for h in resumed["curve"]] == [h["valid"] for h in uninterrupted["curve"]]
    assert not (out / "checkpoint.pt").exists()


def test_cli_trains_gru4rec_in_prefix_form(split_dir, tmp_path):
    out = tmp_path / "gru"
    params = json.dumps({"training": {**TRAINING, "train_form": "prefix", "epochs": 2}, "model": {"hidden_size": 16}})
    code = main(["train", "run", "--data", str(split_dir), "--model", "gru4rec", "--seed", "1",
                 "--params", params, "--out", str(out), "--threads", "1"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train_rows"] == metrics["n_train_examples"]  # prefix: one target per row
    assert metrics["config"]["training"]["train_form"] == "prefix"


def test_cli_reports_bad_params(split_dir, tmp_path, capsys):
    code = main(["train", "run", "--data", str(split_dir), "--model", "sasrec", "--params",
                 json.dumps({"training": {"epoch": 2}}), "--out", str(tmp_path / "x")])
    assert code == 1
    assert "unknown training keys ['epoch']" in capsys.readouterr().err
    code = main(["train", "run", "--data", str(split_dir), "--model", "sasrec", "--variant", "wo_cip",
                 "--out", str(tmp_path / "y")])
    assert code == 1 and "apply to sgp4sr only" in capsys.readouterr().err
