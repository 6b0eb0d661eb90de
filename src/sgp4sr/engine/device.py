"""Where a run computes: ``training.device`` (``auto``, ``cpu`` or ``cuda``) to a torch device."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` is the GPU when one is visible, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is visible")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
