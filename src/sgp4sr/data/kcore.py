"""Deduplicate user-item pairs, then the iterative k-core.

Removing a sparse item can push a user under ``k`` and vice versa, so the
filter repeats until nothing changes; counting is vectorised (``value_counts``
+ ``map``), one pass per round. A filter that leaves nothing fails
(:class:`KCoreError`) with the setting and the users/items/interactions of
each pass, rather than writing an empty table for the split to trip over.
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


class KCoreError(ValueError):
    """The k-core filter left no interaction; the message names the setting and each pass's counts."""


Counts = tuple[int, int, int]  # users, items, interactions


def _history_text(history: list[Counts], most: int = 6) -> str:
    """``pass i: users/items/interactions before -> after`` for the first and last passes."""
    steps = [f"pass {i}: {'/'.join(map(str, a))} -> {'/'.join(map(str, b))}"
             for i, (a, b) in enumerate(zip(history, history[1:]), start=1)]
    if len(steps) > most:
        steps = [*steps[:2], f"... {len(steps) - most + 1} more pass(es) ...", *steps[-(most - 3):]]
    return "; ".join(steps)


def kcore(frame: pd.DataFrame, k: int, *, setting: str = "kcore") -> pd.DataFrame:
    """Largest sub-table where every user and every item has at least ``k`` rows.

    An empty result raises :class:`KCoreError` naming ``setting`` (the config
    key, e.g. ``datasets.baby.kcore``) and the counts before and after each pass.
    """
    if k < 1:
        raise ValueError(f"{setting} must be >= 1, got {k}")
    current = frame
    history: list[Counts] = []  # counts before each pass, then the final ones
    while True:
        user_vc, item_vc = current["user"].value_counts(), current["item"].value_counts()
        history.append((len(user_vc), len(item_vc), len(current)))
        keep = (current["user"].map(user_vc) >= k) & (current["item"].map(item_vc) >= k)
        if keep.all():
            break
        current = current[keep]
    if current.empty:
        passes = _history_text(history) if len(history) > 1 else "the input has none"
        raise KCoreError(f"{setting}={k}: the k-core filter left no interactions; users/items/interactions "
                         f"before -> after each pass: {passes}. Lower {setting} or check the input.")
    log.info("%d-core after %d round(s): %d users, %d items, %d interactions (from %d)",
             k, len(history), *history[-1], len(frame))
    if len(history) > 1:
        log.debug("k-core passes (users/items/interactions): %s", _history_text(history, most=len(history)))
    return current


def filter_interactions(frame: pd.DataFrame, k: int, *, setting: str = "kcore") -> pd.DataFrame:
    """The ``filter`` step: dedup, k-core (``setting`` names it in errors), fresh index."""
    deduped = drop_duplicates_keep_earliest(frame.reset_index(drop=True))
    return kcore(deduped, k, setting=setting).reset_index(drop=True)
