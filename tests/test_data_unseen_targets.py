"""Validation/test items never seen in training: counted in the log and stats.json, dropped on request."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from data_fixtures import write_benchmark_folder
from sgp4sr.cli.main import main
from sgp4sr.config import ConfigError, validate_config
from sgp4sr.data.benchmark import import_benchmark
from sgp4sr.data.load import load_split
from sgp4sr.data.rules import DataRules
from sgp4sr.data.split import write_split
from sgp4sr.data.stats import compute_stats

ROOT = Path(__file__).resolve().parents[1]

# "9" has a test item (99) and "8" a validation item (88) that no training sequence holds;
# "7"'s validation item 77 is only in "9"'s training part, so dropping "9" makes it unseen too.
SEQS = {
    "1": ["1", "2", "5", "3", "4"],
    "2": ["5", "3", "4", "1", "2"],
    "7": ["3", "4", "1", "77", "2"],
    "8": ["1", "5", "2", "88", "3"],
    "9": ["4", "77", "5", "1", "99"],
}


def _import(tmp_path, unseen: str) -> Path:
    src = write_benchmark_folder(tmp_path / "src", "toy", SEQS)
    out = tmp_path / f"data_{unseen}"
    import_benchmark(src / "toy.train.inter", src / "toy.valid.inter", src / "toy.test.inter", out, unseen)
    return out


def test_benchmark_import_counts_unseen_targets_and_keeps_them(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        out = _import(tmp_path, "keep")
    assert "1 user(s) have a test item and 1 a validation item never seen in training: kept" in caplog.text
    stats = compute_stats(out)
    assert stats["unseen_test_targets"] == 1 and stats["unseen_valid_targets"] == 1
    assert load_split(out).user_tokens.tolist() == ["1", "2", "7", "8", "9"]  # the published split, whole


def test_benchmark_import_drop_repeats_until_every_target_is_seen(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        out = _import(tmp_path, "drop")
    data = load_split(out)
    assert data.user_tokens.tolist() == ["1", "2"]
    assert "removed 3 user(s) in all" in caplog.text
    stats = compute_stats(out)
    assert stats["unseen_test_targets"] == 0 and stats["unseen_valid_targets"] == 0
    assert stats["users"] == 2


def test_leave_one_out_split_counts_and_drops(tmp_path):
    rows = [(u, i, t) for u, seq in SEQS.items() for t, i in enumerate(seq)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(rating=float("nan"))
    write_split(tmp_path / "keep", frame)
    stats = compute_stats(tmp_path / "keep")
    assert (stats["unseen_valid_targets"], stats["unseen_test_targets"]) == (1, 1)
    write_split(tmp_path / "drop", frame, unseen="drop")
    assert compute_stats(tmp_path / "drop")["users"] == 2
    with pytest.raises(ValueError, match="unseen_targets must be one of keep, drop"):
        write_split(tmp_path / "bad", frame, unseen="maybe")


def test_drop_that_removes_every_user_fails(tmp_path):
    write_benchmark_folder(tmp_path, "toy", {"1": ["1", "2", "3", "4"], "2": ["5", "6", "7", "8"]})
    with pytest.raises(ValueError, match=r"unseen_targets=drop removed every user \(2\)"):
        import_benchmark(None, tmp_path / "toy.valid.inter", tmp_path / "toy.test.inter", tmp_path / "data", "drop")


def test_cli_import_benchmark_drop(tmp_path):
    src = write_benchmark_folder(tmp_path / "src", "toy", SEQS, with_train=False)
    out = tmp_path / "data"
    rc = main(["prepare", "import-benchmark", "--valid", str(src / "toy.valid.inter"),
               "--test", str(src / "toy.test.inter"), "--out-dir", str(out), "--unseen-targets", "drop"])
    assert rc == 0
    assert pd.read_parquet(out / "users.parquet")["user"].tolist() == ["1", "2"]


def test_config_key_and_rule_param():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["datasets"]["bench"] = {"source": "benchmark", "name": "toy", "path": "p", "unseen_targets": "drop"}
    validate_config(config)
    rules = DataRules(config)
    assert rules.unseen_targets(SimpleNamespace(dataset="bench")) == "drop"
    assert rules.unseen_targets(SimpleNamespace(dataset="demo")) == "keep"
    bad = copy.deepcopy(config)
    bad["datasets"]["bench"]["unseen_targets"] = "maybe"
    with pytest.raises(ConfigError, match=r"datasets\.bench\.unseen_targets: 'maybe' is not one of"):
        validate_config(bad)
