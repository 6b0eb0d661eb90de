"""Epoch checkpoints so that a killed run resumes where it stopped.

A checkpoint holds everything the next epoch depends on — weights, optimiser
moments, the best weights so far, the early-stopping counters and every random
generator — so a resumed run continues exactly as an uninterrupted one would
(on the same device). A fingerprint of the run's settings guards against
resuming a run whose configuration has changed since.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgp4sr.io import atomic_path

log = logging.getLogger(__name__)


def fingerprint(obj: Any) -> str:
    """Stable short hash of a JSON-able description of the run."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file: a kill mid-write leaves the previous checkpoint intact."""
    with atomic_path(path, suffix=".tmp") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists and belongs to this configuration, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a corrupt file must not block a rerun
        log.warning("ignoring unreadable checkpoint %s (%s); starting from scratch", path, exc)
        return None
    if state.get("fingerprint") != expected_fingerprint:
        log.warning("checkpoint %s was written with other settings; starting from scratch", path)
        return None
    return state
