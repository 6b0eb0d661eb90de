"""Deduplicate user-item pairs, then the iterative k-core.

Removing a sparse item can push a user under ``k`` and vice versa, so the
filter repeats until nothing changes; counting is vectorised (``value_counts``
+ ``map``), one pass per round.
"""

from __future__ import annotations

import logging

import pandas as pd

log = logging.getLogger(__name__)


def drop_duplicates_keep_earliest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): the earliest, ties broken by input order; input order kept."""
    order = frame["timestamp"].sort_values(kind="stable").index
    kept = frame.loc[order].drop_duplicates(["user", "item"], keep="first")
    dropped = len(frame) - len(kept)
    if dropped:
        log.info("dropped %d repeated user-item interaction(s)", dropped)
    return frame.loc[kept.index.sort_values()]


def kcore(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Largest sub-table where every user and every item has at least ``k`` rows."""
    if k < 1:
        raise ValueError(f"kcore must be >= 1, got {k}")
    current = frame
    rounds = 0
    while True:
        rounds += 1
        user_n = current["user"].map(current["user"].value_counts())
        item_n = current["item"].map(current["item"].value_counts())
        keep = (user_n >= k) & (item_n >= k)
        if keep.all():
            break
        current = current[keep]
    log.info("%d-core after %d round(s): %d users, %d items, %d interactions (from %d)",
             k, rounds, current["user"].nunique(), current["item"].nunique(), len(current), len(frame))
    return current


def filter_interactions(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``filter`` step: dedup, k-core, fresh index."""
    return kcore(drop_duplicates_keep_earliest(frame.reset_index(drop=True)), k).reset_index(drop=True)
