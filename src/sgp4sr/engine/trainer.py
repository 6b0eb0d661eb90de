"""The fit loop: Adam, one pass over the examples per epoch, validation, early stopping.

Each epoch ends with a validation ranking and a checkpoint; training stops
after ``patience`` epochs without improving ``valid_metric`` and the best
weights are put back into the model. The per-epoch shuffle comes from a
generator seeded by (seed, epoch), and the torch generators are stored in the
checkpoint, so a resumed run repeats the uninterrupted run's draws.
"""

from __future__ import annotations

import copy
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from sgp4sr.engine.checkpoint import (Fingerprint, fingerprint_record, resume_checkpoint, rng_state, save_checkpoint,
                                      set_rng_state)
from sgp4sr.engine.sequences import Examples, epoch_batches, iterate_batches
from sgp4sr.engine.settings import TrainConfig
from sgp4sr.models.base import SequentialRecommender

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int = 0


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train_epoch(model: SequentialRecommender, optimizer: torch.optim.Optimizer, examples: Examples,
                cfg: TrainConfig, rng: np.random.Generator, device: torch.device, epoch: int) -> tuple[float, int]:
    """One pass over the examples; returns the mean loss per batch and the number of optimiser steps."""
    model.train()
    total = torch.zeros((), device=device)
    steps = 0
    autocast = device.type == "cuda"
    batches = epoch_batches(examples, cfg.batch_size, rng, cfg.length_buckets)
    for batch in tqdm(iterate_batches(examples, batches), total=len(batches),
                      desc=f"epoch {epoch}", leave=False, disable=None):
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model.calculate_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().float()
        steps += 1
    mean = float(total) / max(steps, 1)
    if not np.isfinite(mean):
        raise FloatingPointError(f"training loss became {mean} in epoch {epoch}; lower the learning rate")
    return mean, steps


def fit(model: SequentialRecommender, examples: Examples, validate: Callable[[], dict[str, float]],
        cfg: TrainConfig, device: torch.device, seed: int, checkpoint: Path | None = None,
        fingerprint: str | Fingerprint = "", on_epoch_end: Callable[[int], None] | None = None) -> FitResult:
    """Train ``model`` in place and leave the best validation weights in it.

    ``validate`` ranks the validation users and returns the metrics;
    ``on_epoch_end(epoch)`` runs after the checkpoint is written (tests use it
    to simulate a crash). A checkpoint of another run (see :func:`sgp4sr.engine.checkpoint.resume_checkpoint`)
    is discarded with a warning and training starts from scratch.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict[str, Any]] = []
    best_score, best_epoch, bad = -np.inf, 0, 0
    best_state = copy.deepcopy(model.state_dict())
    start = 1
    fresh_rng = rng_state()

    def restore(state: dict[str, Any]) -> None:
        model.load_state_dict(state["best_state"])  # both weight sets must fit the model
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        missing = [k for k in ("best_score", "best_epoch", "bad", "history", "epoch", "rng") if k not in state]
        if missing:
            raise KeyError(f"no {', '.join(missing)} in it")
        set_rng_state(state["rng"])

    def reset() -> None:
        nonlocal optimizer
        model.load_state_dict(best_state)  # still the fresh initialisation
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        set_rng_state(fresh_rng)

    state = resume_checkpoint(checkpoint, fingerprint, restore, reset)
    if state is not None:
        best_state, best_score, best_epoch = state["best_state"], state["best_score"], state["best_epoch"]
        bad, history, start = state["bad"], state["history"], state["epoch"] + 1
        log.info("resuming from %s after epoch %d (best %s %.4f at epoch %d)", checkpoint, state["epoch"],
                 cfg.valid_metric, best_score, best_epoch)
    resumed_from = start - 1
    stopped = bool(history) and bad >= cfg.patience
    for epoch in range(start, cfg.epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        loss, steps = train_epoch(model, optimizer, examples, cfg, rng, device, epoch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        valid = validate()
        t2 = time.perf_counter()
        score = valid[cfg.valid_metric]
        improved = score > best_score
        if improved:
            best_score, best_epoch, bad = score, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            bad += 1
        history.append({"epoch": epoch, "loss": loss, "steps": steps, "train_seconds": t1 - t0,
                        "eval_seconds": t2 - t1, "examples_per_second": examples.n_targets / max(t1 - t0, 1e-9), "valid": valid})
        log.info("epoch %d: loss %.4f, valid %s %.4f%s, train %.1fs (%d steps, %.0f examples/s), eval %.1fs, "
                 "rss %.0f MB", epoch, loss, cfg.valid_metric, score, " *" if improved else "", t1 - t0, steps,
                 examples.n_targets / max(t1 - t0, 1e-9), t2 - t1, peak_rss_mb())
        stopped = bad >= cfg.patience
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                **fingerprint_record(fingerprint), "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "best_state": best_state, "best_score": best_score,
                "best_epoch": best_epoch, "bad": bad, "history": history, "rng": rng_state()})
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if stopped:
            log.info("early stop: no improvement of %s for %d epochs", cfg.valid_metric, cfg.patience)
    model.load_state_dict(best_state)
    return FitResult(best_epoch=best_epoch, best_score=float(best_score), history=history,
                     stopped_early=stopped, resumed_from=resumed_from)
