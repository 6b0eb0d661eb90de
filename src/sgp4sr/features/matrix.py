"""Feature-matrix conventions shared by every encoder: checks and fallbacks.

Every later stage trusts ``<modality>.npy`` blindly (graphs take cosine
similarities, models index rows by item), so a wrong row count or a NaN must
be stopped here with a message that names the file, not three stages later.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

FALLBACKS = ("zero", "mean")


class FeatureFileError(ValueError):
    """A feature file (ours or supplied) breaks the matrix contract."""


def check_feature_matrix(
    array: np.ndarray,
    source: str,
    *,
    n_rows: int | None = None,
    dim: int | None = None,
    padding_row: bool = False,
) -> None:
    """Raise :class:`FeatureFileError` naming ``source`` unless ``array`` is a sane feature matrix.

    ``padding_row`` additionally requires row 0 to be all zeros (our own
    outputs); supplied files are checked before re-indexing, without it.
    """
    if array.ndim != 2:
        raise FeatureFileError(f"{source}: expected a 2-D (rows x dim) matrix, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise FeatureFileError(f"{source}: expected real numbers, got dtype {array.dtype}")
    rows, d = array.shape
    if d == 0:
        raise FeatureFileError(f"{source}: feature dimension is 0")
    if n_rows is not None and rows != n_rows:
        raise FeatureFileError(f"{source}: has {rows} rows, expected {n_rows}")
    if dim is not None and d != dim:
        raise FeatureFileError(f"{source}: has dimension {d}, expected {dim}")
    finite = np.isfinite(array).all(axis=1) if np.issubdtype(array.dtype, np.floating) else np.ones(rows, bool)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise FeatureFileError(f"{source}: {len(bad)} row(s) contain NaN or inf (rows {shown})")
    if padding_row and rows and np.any(array[0] != 0):
        raise FeatureFileError(f"{source}: row 0 is the padding item and must be all zeros")


def fill_fallback(matrix: np.ndarray, found: np.ndarray, fallback: str, what: str) -> np.ndarray:
    """Give every real item without a feature (``found`` False) the fallback row, in place.

    ``found`` has one flag per row of ``matrix``; row 0 (padding) is ignored and
    stays zero. ``mean`` is the mean of the found rows; with nothing found there
    is nothing to fall back on, which is an error rather than a silent zero matrix.
    Returns the boolean mask of the rows that got the fallback.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; choose one of {', '.join(FALLBACKS)}")
    real = np.ones(len(matrix), dtype=bool)
    real[0] = False
    missing = real & ~found
    n_found = int((real & found).sum())
    if n_found == 0:
        raise FeatureFileError(f"{what}: no item has a feature (all {int(real.sum())} missing)")
    if missing.any():
        if fallback == "mean":
            matrix[missing] = matrix[real & found].mean(axis=0, dtype=np.float64).astype(matrix.dtype)
        else:
            matrix[missing] = 0
    matrix[0] = 0
    log.info("%s: %d of %d items found, %d got the %s fallback", what, n_found, int(real.sum()),
             int(missing.sum()), fallback)
    return missing
