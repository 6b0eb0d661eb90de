"""Features shipped beside a benchmark split (``<path>/<name>.<modality>.npy``).

Such files (MMRec style) have one row per item *token*: row ``r`` belongs to
the item whose token is the integer ``r``. Our item index orders integer
tokens numerically and starts at 1, so the matrix is re-indexed to
``item_idx`` with a zero padding row. A file for another dataset (or another
item filtering) almost always has a different row count, which is why the
count must match exactly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from sgp4sr.features.matrix import FeatureFileError, check_feature_matrix

log = logging.getLogger(__name__)


def token_rows(tokens: pd.Series, source: str) -> np.ndarray:
    """Item tokens as row numbers; every token must be a non-negative integer."""
    text = tokens.astype(str).str.strip()
    bad = ~text.str.fullmatch(r"[0-9]+")
    if bad.any():
        examples = ", ".join(repr(t) for t in text[bad].head(3))
        raise FeatureFileError(
            f"{source}: benchmark features are indexed by integer item tokens, but {int(bad.sum())} "
            f"item(s) have other tokens (e.g. {examples})"
        )
    return text.astype(np.int64).to_numpy()


def load_benchmark_features(path: str | os.PathLike, items: pd.DataFrame) -> np.ndarray:
    """Read ``path``, validate it and return the ``(max(item_idx)+1, d)`` float32 matrix, row 0 zeros."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark feature file {path} does not exist")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise FeatureFileError(f"{path}: not a plain numeric .npy file ({exc})") from exc
    check_feature_matrix(array, str(path))
    rows = token_rows(items["item"], str(path))
    expected = int(rows.max()) + 1 if len(rows) else 0
    if array.shape[0] != expected:
        raise FeatureFileError(
            f"{path}: has {array.shape[0]} rows, but the split's item tokens run 0..{expected - 1}, "
            f"so it must have exactly {expected} rows (row r = item token r)"
        )
    n_items = int(items["item_idx"].max()) + 1
    out = np.zeros((n_items, array.shape[1]), dtype=np.float32)
    out[items["item_idx"].to_numpy()] = np.asarray(array[rows], dtype=np.float32)
    log.info("%s: %d x %d, re-indexed to %d rows (with padding)", path.name, *array.shape, n_items)
    return out
