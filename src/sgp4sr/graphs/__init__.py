"""Offline graph artefacts of SGP4SR (spec §1): co-occurrence ``W``, modal graphs ``A_m``
and interest-centre membership ``C_m``, built sparse and vectorised.

The engine reads them with :func:`load_graph` (``W`` and ``A_m``, scipy CSR)
and :func:`load_centres`. The names below are imported on first use, so the
Snakefile can read :mod:`sgp4sr.graphs.rules` without loading scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Centres": "centres", "build_centres": "centres", "load_centres": "centres", "save_centres": "centres",
    "build_cooccurrence": "cooccurrence", "load_graph": "cooccurrence", "save_sparse": "cooccurrence",
    "build_modal_graph": "neighbours", "load_features": "neighbours", "neighbour_sizes": "neighbours",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sgp4sr.graphs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sgp4sr.graphs.{_EXPORTS[name]}"), name)
