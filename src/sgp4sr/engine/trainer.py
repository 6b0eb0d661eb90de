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

from sgp4sr.engine.checkpoint import Fingerprint
from sgp4sr.engine.loop import Progress, run_epochs
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


def train_step(model: SequentialRecommender, optimizer: torch.optim.Optimizer, batch: Any, device: torch.device,
               autocast: bool) -> torch.Tensor:
    """One optimiser step on ``batch`` (bf16 autocast when ``autocast``); the detached float32 loss.

    The engine's step: the trainer and the speed benchmarks (benchmarks/) call this same function.
    """
    batch = batch.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = model.calculate_loss(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach().float()


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
        total += train_step(model, optimizer, batch, device, autocast)
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
    to simulate a crash). The epochs, checkpoints and resume are
    :func:`sgp4sr.engine.loop.run_epochs`; a checkpoint of another run is
    discarded with a warning and training starts from scratch.
    """
    fresh = {"best_state": copy.deepcopy(model.state_dict()), "best_score": -np.inf, "best_epoch": 0, "bad": 0}

    def make_optimizer() -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def check_resumed(progress: Progress) -> None:
        missing = [k for k in fresh if k not in progress.extra]
        if missing:
            raise KeyError(f"no {', '.join(missing)} in it")
        model.load_state_dict(progress.extra["best_state"])  # both weight sets must fit the model

    def run_epoch(optimizer: torch.optim.Optimizer, epoch: int, progress: Progress) -> bool:
        best = progress.extra
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        loss, steps = train_epoch(model, optimizer, examples, cfg, rng, device, epoch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        valid = validate()
        t2 = time.perf_counter()
        score = valid[cfg.valid_metric]
        improved = score > best["best_score"]
        if improved:
            best.update(best_score=score, best_epoch=epoch, bad=0,
                        best_state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        else:
            best["bad"] += 1
        rate = examples.n_targets / max(t1 - t0, 1e-9)
        progress.history.append({"epoch": epoch, "loss": loss, "steps": steps, "train_seconds": t1 - t0,
                                 "eval_seconds": t2 - t1, "examples_per_second": rate, "valid": valid})
        log.info("epoch %d: loss %.4f, valid %s %.4f%s, train %.1fs (%d steps, %.0f examples/s), eval %.1fs, "
                 "rss %.0f MB", epoch, loss, cfg.valid_metric, score, " *" if improved else "", t1 - t0, steps,
                 rate, t2 - t1, peak_rss_mb())
        stop = best["bad"] >= cfg.patience
        if stop:
            log.info("early stop: no improvement of %s for %d epochs", cfg.valid_metric, cfg.patience)
        return stop

    result = run_epochs(model, make_optimizer, cfg.epochs, run_epoch, progress=Progress(extra=dict(fresh)),
                        checkpoint=checkpoint, fingerprint=fingerprint, check_resumed=check_resumed,
                        on_epoch_end=on_epoch_end)
    best = result.progress.extra
    if result.resumed_from:
        log.info("resumed after epoch %d (best %s %.4f at epoch %d)", result.resumed_from, cfg.valid_metric,
                 best["best_score"], best["best_epoch"])
    model.load_state_dict(best["best_state"])
    return FitResult(best_epoch=best["best_epoch"], best_score=float(best["best_score"]),
                     history=result.progress.history, stopped_early=result.progress.stop,
                     resumed_from=result.resumed_from)
