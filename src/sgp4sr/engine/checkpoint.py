"""Epoch checkpoints so that a killed run resumes where it stopped.

A checkpoint holds everything the next epoch depends on — weights, optimiser
moments, the best weights so far, the early-stopping counters and every random
generator — so a resumed run continues exactly as an uninterrupted one would
(on the same device).

A :class:`Fingerprint` of the run guards against resuming stale state: the
effective settings plus a sha256 of every input file's *content* (a file
replaced at the same path counts as changed). A checkpoint whose fingerprint
differs, that cannot be read, or whose weights do not fit the model is
discarded with a warning naming the file and what differed, and the run
starts from scratch: a stale checkpoint never blocks a rerun nor leaks into it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from sgp4sr.io import atomic_path

log = logging.getLogger(__name__)


def fingerprint(obj: Any) -> str:
    """Stable short hash of a JSON-able description of the run."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of a file's content, streamed (feature and graph files can be large)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def input_digests(files: Mapping[str, str | Path]) -> dict[str, str]:
    """Name -> sha256 of each file (``"missing"`` for one that does not exist), sorted by name."""
    return {name: file_digest(path) if Path(path).is_file() else "missing"
            for name, path in sorted(files.items())}


def _jsonable(obj: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists), so stored and fresh compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


@dataclass(frozen=True)
class Fingerprint:
    """A run's identity for resuming: its effective settings and the content hashes of its inputs."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return fingerprint({"settings": self.settings, "inputs": dict(self.inputs)})

    def record(self) -> dict[str, Any]:
        """What the checkpoint stores, so a mismatch can say what changed."""
        return {"fingerprint": self.key,
                "fingerprint_detail": {"settings": _jsonable(self.settings), "inputs": dict(self.inputs)}}

    def changes(self, stored: Any) -> str:
        """What differs from a checkpoint's stored ``fingerprint_detail`` (e.g. "inputs changed: data/x")."""
        if not isinstance(stored, Mapping) or not {"settings", "inputs"} <= set(stored):
            return "it was written by an earlier version or for other settings (no fingerprint detail)"
        parts = []
        old_in, new_in = dict(stored["inputs"]), dict(self.inputs)
        changed = sorted(k for k in set(old_in) | set(new_in) if old_in.get(k) != new_in.get(k))
        if changed:
            parts.append(f"inputs changed: {', '.join(changed)}")
        old_set, new_set = _flatten(stored["settings"]), _flatten(_jsonable(self.settings))
        unset = "<unset>"
        changed = sorted(k for k in set(old_set) | set(new_set) if old_set.get(k, unset) != new_set.get(k, unset))
        if changed:
            shown = [f"{k} {old_set.get(k, unset)!r} -> {new_set.get(k, unset)!r}" for k in changed[:5]]
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            parts.append(f"settings changed: {', '.join(shown)}{more}")
        return "; ".join(parts) or "its fingerprint differs"


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def fingerprint_record(expected: str | Fingerprint) -> dict[str, Any]:
    """The checkpoint entries that identify the run (``fingerprint`` and, when known, its detail)."""
    return expected.record() if isinstance(expected, Fingerprint) else {"fingerprint": expected}


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


def load_checkpoint(path: str | Path, expected_fingerprint: str | Fingerprint) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists and belongs to this run, else None (with a warning naming it)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict):
            raise TypeError(f"it holds a {type(state).__name__}, not a checkpoint")
    except Exception as exc:  # a corrupt file must not block a rerun
        log.warning("discarding unreadable checkpoint %s (%s); starting from scratch", path, _short(exc))
        return None
    expected = fingerprint_record(expected_fingerprint)["fingerprint"]
    if state.get("fingerprint") != expected:
        why = (expected_fingerprint.changes(state.get("fingerprint_detail"))
               if isinstance(expected_fingerprint, Fingerprint) else "it was written with other settings")
        log.warning("discarding checkpoint %s: %s; starting from scratch", path, why)
        return None
    return state


def resume_checkpoint(path: str | Path | None, expected_fingerprint: str | Fingerprint,
                      restore: Callable[[dict[str, Any]], None],
                      reset: Callable[[], None]) -> dict[str, Any] | None:
    """Load the checkpoint at ``path`` and ``restore(state)`` from it; None to start from scratch.

    When ``restore`` fails (weights of another shape, a missing entry), ``reset()`` undoes whatever it
    changed and the checkpoint is discarded with a warning naming it, instead of failing every rerun.
    """
    if path is None:
        return None
    state = load_checkpoint(path, expected_fingerprint)
    if state is None:
        return None
    try:
        restore(state)
    except Exception as exc:  # noqa: BLE001 - any mismatch means: not this run's state
        reset()
        log.warning("discarding checkpoint %s: it does not fit this run (%s); starting from scratch",
                    path, _short(exc))
        return None
    return state


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + " ..."
