"""The one epoch loop: resume, run an epoch, checkpoint, stop. Training and pre-training both use it.

What an epoch does is the caller's ``run_epoch(optimizer, epoch, progress)``:
:func:`sgp4sr.engine.trainer.fit` trains, validates and keeps the best weights
and the early-stopping counters in ``progress.extra``; pre-training only
trains. The loop owns everything else: the optimiser, the checkpoint after
every epoch (weights, optimiser moments, ``progress`` and every random
generator, so a resumed run repeats the uninterrupted run's draws), resuming
from it, and discarding a checkpoint that belongs to another run
(:func:`sgp4sr.engine.checkpoint.resume_checkpoint`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from sgp4sr.engine.checkpoint import (Fingerprint, fingerprint_record, resume_checkpoint, rng_state, save_checkpoint,
                                      set_rng_state)

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """What the loop carries from epoch to epoch; stored in the checkpoint."""

    history: list[dict[str, Any]] = field(default_factory=list)
    #: the caller's own state (best weights, counters); restored on resume
    extra: dict[str, Any] = field(default_factory=dict)
    stop: bool = False


@dataclass
class LoopResult:
    progress: Progress
    #: the last epoch of the checkpoint the run resumed from (0: a fresh start)
    resumed_from: int
    optimizer: torch.optim.Optimizer


def run_epochs(model: torch.nn.Module, make_optimizer: Callable[[], torch.optim.Optimizer], epochs: int,
               run_epoch: Callable[[torch.optim.Optimizer, int, Progress], bool], *,
               progress: Progress | None = None, checkpoint: Path | None = None,
               fingerprint: str | Fingerprint = "", check_resumed: Callable[[Progress], None] | None = None,
               on_epoch_end: Callable[[int], None] | None = None) -> LoopResult:
    """Run epochs ``1..epochs`` (or resume after the checkpoint's epoch) until ``run_epoch`` returns True.

    ``run_epoch`` appends its record to ``progress.history`` and returns whether to stop.
    ``check_resumed(progress)`` may reject a resumed state (raise) so it is discarded too.
    ``on_epoch_end(epoch)`` runs after the checkpoint is written (tests use it to simulate a crash).
    """
    progress = progress or Progress()
    optimizer = make_optimizer()
    fresh_state, fresh_rng = copy.deepcopy(model.state_dict()), rng_state()

    def restore(state: dict[str, Any]) -> None:
        missing = [k for k in ("progress", "epoch", "rng", "model", "optimizer") if k not in state]
        if missing:
            raise KeyError(f"no {', '.join(missing)} in it")
        resumed = Progress(**state["progress"])
        if check_resumed is not None:
            check_resumed(resumed)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])

    def reset() -> None:
        nonlocal optimizer
        model.load_state_dict(fresh_state)
        optimizer = make_optimizer()
        set_rng_state(fresh_rng)

    start = 1
    state = resume_checkpoint(checkpoint, fingerprint, restore, reset)
    if state is not None:
        progress, start = Progress(**state["progress"]), int(state["epoch"]) + 1
        log.info("resuming from %s after epoch %d", checkpoint, state["epoch"])
    for epoch in range(start, int(epochs) + 1):
        if progress.stop:
            break
        progress.stop = bool(run_epoch(optimizer, epoch, progress))
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                **fingerprint_record(fingerprint), "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "rng": rng_state(),
                "progress": {"history": progress.history, "extra": progress.extra, "stop": progress.stop}})
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return LoopResult(progress, start - 1, optimizer)
