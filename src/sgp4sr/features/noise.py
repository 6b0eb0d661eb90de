"""Modality noise (the paper's Figure 3): a share of items get another item's feature row.

The chosen items come from one seeded permutation per (seed, modality) and
their donors from one seeded stream, and a ratio takes a prefix of both. So
the items corrupted at ratio 0.1 are also corrupted (by the same donors) at
0.2, ..., 0.5: the curves over ratios differ only by the extra noise, not by
a fresh draw at every point.
"""

from __future__ import annotations

import zlib

import numpy as np

from sgp4sr.features.matrix import check_feature_matrix
from sgp4sr.layout import format_number, noisy_fset

# The paper's Figure 3 ratios; datasets.<ds>.noise_ratios overrides them.
DEFAULT_NOISE_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5)


def noise_rng(seed: int, modality: str) -> np.random.Generator:
    """Independent stream per modality (crc32 of the name: stable across Python runs, unlike hash())."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(modality.encode("utf-8"))]))


def noise_plan(n_items: int, ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(chosen, donors)`` item indices: ``round(ratio * (n_items - 1))`` real items, each with another item.

    Padding (index 0) is never chosen nor a donor; a donor is never the item itself.
    """
    if not 0 <= ratio <= 1:
        raise ValueError(f"noise ratio must lie in [0, 1], got {ratio}")
    n_real = n_items - 1
    if n_real < 2 and ratio > 0:
        raise ValueError(f"modality noise needs at least 2 real items, got {n_real}")
    order = rng.permutation(n_real) + 1
    # An offset in 1..n_real-1 (mod n_real) lands on any other real item, never on the item itself.
    offsets = rng.integers(1, max(n_real, 2), size=n_real)
    donors = (order - 1 + offsets) % n_real + 1
    k = int(round(ratio * n_real))
    return order[:k], donors[:k]


def add_modality_noise(features: np.ndarray, ratio: float, seed: int, modality: str,
                       source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(noisy copy, chosen item indices)``; donor rows are taken from the clean matrix.

    ``source`` (the file name) is what an error about a malformed matrix names.
    """
    check_feature_matrix(features, source or f"{modality} features", padding_row=True)
    chosen, donors = noise_plan(len(features), ratio, noise_rng(seed, modality))
    noisy = features.copy()
    noisy[chosen] = features[donors]
    return noisy, chosen


def parse_ratio(text: str) -> float:
    """Parse a ratio wildcard, insisting on the canonical ``%g`` spelling (one file per ratio)."""
    try:
        ratio = float(text)
    except ValueError:
        raise ValueError(f"noise ratio {text!r} is not a number") from None
    if format_number(ratio) != text:
        raise ValueError(f"noise ratio {text!r} must be written as {format_number(ratio)!r}")
    if not 0 < ratio <= 1:
        raise ValueError(f"noise ratio must lie in (0, 1], got {text}")
    return ratio


def noisy_name(modality: str, ratio: float) -> str:
    return noisy_fset(modality, ratio)
