"""Stale checkpoints: a changed input (same path, other content), changed settings, a checkpoint of other
shapes or a corrupt one is discarded with a warning naming the file, and the run starts fresh."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from engine_fixtures import write_planted_split
from sgp4sr.data.load import load_split
from sgp4sr.engine.checkpoint import Fingerprint, file_digest, load_checkpoint
from sgp4sr.engine.pretrain import PretrainSettings, pretrain
from sgp4sr.data.load import split_files
from sgp4sr.engine.run import RunSpec, run_training
from test_pretrain import MODELS, write_domain

TRAINING = {"epochs": 2, "patience": 3, "batch_size": 32, "eval_batch_size": 64, "lr": 0.005, "max_len": 8,
            "topk": [5, 10], "valid_metric": "recall@10"}
SASREC = {"hidden_size": 16, "layers": 1, "heads": 2, "dropout": 0.1}


class Crash(RuntimeError):
    pass


def crash_after_first(epoch: int) -> None:
    if epoch == 1:
        raise Crash("simulated kill after epoch 1")


def spec(data: Path, out: Path, **params) -> RunSpec:
    return RunSpec(data=data, out=out, model="sasrec", seed=3, training=TRAINING,
                   model_params={**SASREC, **params}, threads=1)


def killed_run(data: Path, out: Path) -> Path:
    with pytest.raises(Crash):
        run_training(spec(data, out), on_epoch_end=crash_after_first)
    assert (out / "checkpoint.pt").exists()
    return out / "checkpoint.pt"


def warnings_of(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_file_digest_is_the_sha256_of_the_content(tmp_path):
    import hashlib

    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1_000_000)
    assert file_digest(path) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


def test_changed_split_content_at_the_same_path_starts_fresh(tmp_path, caplog):
    data, out = tmp_path / "split", tmp_path / "run"
    write_planted_split(data, seed=0)
    before = load_split(data)
    checkpoint = killed_run(data, out)
    write_planted_split(data, seed=1)  # other interactions, same files, same shapes
    after = load_split(data)
    assert (after.n_items, after.n_users) == (before.n_items, before.n_users)
    assert not np.array_equal(after.test_items, before.test_items)
    with caplog.at_level(logging.WARNING):
        rerun = run_training(spec(data, out))
    message = warnings_of(caplog)
    assert f"discarding checkpoint {checkpoint}" in message and "inputs changed: data/planted." in message
    assert "settings changed" not in message
    assert rerun["resumed_from_epoch"] == 0 and [h["epoch"] for h in rerun["curve"]] == [1, 2]
    fresh = run_training(spec(data, tmp_path / "fresh"))  # the same as a run that never saw the old data
    assert rerun["test"] == fresh["test"] and [h["valid"] for h in rerun["curve"]] == [
        h["valid"] for h in fresh["curve"]]
    digests = rerun["config"]["input_digests"]
    assert set(digests) == set(split_files(data)) and digests["data/planted.valid.inter"] == file_digest(
        data / "planted.valid.inter")


def test_changed_settings_are_named(tmp_path, caplog):
    data, out = tmp_path / "split", tmp_path / "run"
    write_planted_split(data, seed=0)
    checkpoint = killed_run(data, out)
    with caplog.at_level(logging.WARNING):
        rerun = run_training(spec(data, out, dropout=0.2))
    message = warnings_of(caplog)
    assert f"discarding checkpoint {checkpoint}: settings changed: model_params.dropout 0.1 -> 0.2" in message
    assert "inputs changed" not in message and rerun["resumed_from_epoch"] == 0


def test_other_shapes_start_fresh_instead_of_failing(tmp_path, caplog):
    data, out = tmp_path / "split", tmp_path / "run"
    write_planted_split(data, seed=0)
    before = load_split(data).n_items
    checkpoint = killed_run(data, out)
    write_planted_split(data, seed=0, n_users=6)  # fewer users: fewer items, other embedding shapes
    assert load_split(data).n_items != before
    with caplog.at_level(logging.WARNING):
        rerun = run_training(spec(data, out))
    assert f"discarding checkpoint {checkpoint}" in warnings_of(caplog) and rerun["resumed_from_epoch"] == 0
    assert not checkpoint.exists()  # the finished run removed it


def test_weights_that_do_not_fit_the_model_start_fresh(tmp_path, caplog):
    """The fingerprint matches (say, a hand-copied checkpoint) but the weights have another shape."""
    data, out = tmp_path / "split", tmp_path / "run"
    write_planted_split(data, seed=0)
    checkpoint = killed_run(data, out)
    state = torch.load(checkpoint, weights_only=False)
    name = next(k for k in state["model"] if k.endswith("items.weight"))
    rows, width = state["model"][name].shape
    state["model"][name] = torch.zeros(rows - 3, width)
    torch.save(state, checkpoint)
    with caplog.at_level(logging.WARNING):
        rerun = run_training(spec(data, out))
    message = warnings_of(caplog)
    assert f"discarding checkpoint {checkpoint}: it does not fit this run" in message and name in message
    fresh = run_training(spec(data, tmp_path / "fresh"))
    assert rerun["resumed_from_epoch"] == 0 and rerun["test"] == fresh["test"]  # nothing of the bad state leaked


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b""])
def test_corrupt_checkpoint_starts_fresh(tmp_path, caplog, content):
    data, out = tmp_path / "split", tmp_path / "run"
    write_planted_split(data, seed=0)
    checkpoint = killed_run(data, out)
    checkpoint.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        rerun = run_training(spec(data, out))
    assert f"discarding unreadable checkpoint {checkpoint}" in warnings_of(caplog)
    assert rerun["resumed_from_epoch"] == 0 and [h["epoch"] for h in rerun["curve"]] == [1, 2]


def test_unchanged_run_still_resumes(tmp_path, caplog):
    data, out = tmp_path / "split", tmp_path / "run"
    write_planted_split(data, seed=0)
    killed_run(data, out)
    with caplog.at_level(logging.INFO):
        rerun = run_training(spec(data, out))
    assert rerun["resumed_from_epoch"] == 1 and "discarding" not in caplog.text and "resuming from" in caplog.text


def test_checkpoint_without_detail_is_discarded_with_a_reason(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    torch.save({"fingerprint": "0123456789abcdef", "epoch": 1}, path)
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path, Fingerprint({"a": 1}, {"data/x": "00"})) is None
    assert f"discarding checkpoint {path}: it was written by an earlier version" in caplog.text


def test_pretraining_resume_checks_the_sources_content(tmp_path, caplog):
    sources = [write_domain(tmp_path, "a", 1), write_domain(tmp_path, "b", 2)]
    settings = PretrainSettings(epochs=2, batch_size=64, lr=0.005, max_len=8)

    def crash(epoch: int) -> None:
        raise Crash("killed")

    out = tmp_path / "pre"
    with pytest.raises(Crash):
        pretrain("unisrec", sources, out, MODELS["unisrec"], settings, seed=2, on_epoch_end=crash)
    image = sources[0].features / "image.npy"
    np.save(image, np.load(image)[:, ::-1].copy())  # same shape, other content
    with caplog.at_level(logging.INFO):
        metrics = pretrain("unisrec", sources, out, MODELS["unisrec"], settings, seed=2)
    assert f"discarding checkpoint {out / 'checkpoint.pt'}: inputs changed: a/features/image" in caplog.text
    assert "resuming pre-training" not in caplog.text and [c["epoch"] for c in metrics["curve"]] == [1, 2]

    caplog.clear()
    with pytest.raises(Crash):
        pretrain("unisrec", sources, out, MODELS["unisrec"], settings, seed=2, on_epoch_end=crash)
    (out / "checkpoint.pt").write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING):
        metrics = pretrain("unisrec", sources, out, MODELS["unisrec"], settings, seed=2)
    assert f"discarding unreadable checkpoint {out / 'checkpoint.pt'}" in caplog.text
    assert [c["epoch"] for c in metrics["curve"]] == [1, 2]
