"""Token -> index mapping shared by our splits and imported benchmark folders.

Indices must not depend on the order rows were read in, so a rerun (or an
import of the same split from another source) gives the same matrices. The
rule: if every token is a canonical non-negative integer ("0", "17", not
"007"), order numerically, otherwise order as strings. Items start at 1
(index 0 is padding), users at 0.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

_CANONICAL_INT = re.compile(r"(?:0|[1-9][0-9]*)\Z")


def sort_tokens(tokens: Iterable[str]) -> list[str]:
    """Unique tokens in index order.

    Leading zeros make a token non-numeric: ISBN-like ASINs such as
    ``0000031852`` must stay distinct from ``31852``.
    """
    unique = {str(t) for t in tokens}
    if unique and all(_CANONICAL_INT.match(t) for t in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def index_tokens(tokens: Iterable[str], *, start: int = 0) -> dict[str, int]:
    """Map each unique token to ``start + rank`` (``start=1`` for items, 0 for users)."""
    return {tok: i + start for i, tok in enumerate(sort_tokens(tokens))}


def item_index(tokens: Iterable[str]) -> dict[str, int]:
    """Item mapping: index 0 is the padding row, real items are ``1..n``."""
    return index_tokens(tokens, start=1)


def user_index(tokens: Iterable[str]) -> dict[str, int]:
    """User mapping: ``0..n_users-1``."""
    return index_tokens(tokens, start=0)


def token_array(mapping: dict[str, int], size: int, fill: str = "") -> np.ndarray:
    """Inverse of a mapping as an object array of length ``size`` (unused slots = ``fill``)."""
    out = np.full(size, fill, dtype=object)
    for tok, idx in mapping.items():
        out[idx] = tok
    return out
