"""Deduplicate, optionally drop items without metadata, then the iterative k-core.

Deduplication (``datasets.<ds>.dedup``): ``pair`` (the default) keeps one
event per user-item pair, the earliest; ``exact`` merges only rows identical
in user, item, timestamp and rating, so a user who rates an item again at
another time keeps both events (UniSRec keeps its interactions as a set of
such tuples). ``require_meta`` drops the interactions of items that have no
metadata record before the k-core, as UniSRec does.

Removing a sparse item can push a user under ``k`` and vice versa, so the
filter repeats until nothing changes; counting is vectorised (``value_counts``
+ ``map``), one pass per round, and counts rows (with ``exact``, a repeated
pair counts as often as it occurs). A filter that leaves nothing fails
(:class:`KCoreError`) with the setting and the users/items/interactions of
each pass, rather than writing an empty table for the split to trip over.
"""

from __future__ import annotations

import logging
from typing import Collection

import pandas as pd

log = logging.getLogger(__name__)

DEDUP_MODES = ("pair", "exact")
EXACT_KEYS = ("user", "item", "timestamp", "rating")


def drop_duplicates_keep_earliest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): the earliest, ties broken by input order; input order kept."""
    order = frame["timestamp"].sort_values(kind="stable").index
    kept = frame.loc[order].drop_duplicates(["user", "item"], keep="first")
    dropped = len(frame) - len(kept)
    if dropped:
        log.info("dropped %d repeated user-item interaction(s)", dropped)
    return frame.loc[kept.index.sort_values()]


def drop_exact_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows identical in user, item, timestamp and rating (if present) merge into the first; input order kept."""
    kept = frame.drop_duplicates([c for c in EXACT_KEYS if c in frame], keep="first")
    dropped = len(frame) - len(kept)
    if dropped:
        log.info("dropped %d exact duplicate row(s) (same user, item, time and rating)", dropped)
    return kept


def deduplicate(frame: pd.DataFrame, mode: str = "pair") -> pd.DataFrame:
    """``pair``: :func:`drop_duplicates_keep_earliest`; ``exact``: :func:`drop_exact_duplicates`."""
    if mode == "pair":
        return drop_duplicates_keep_earliest(frame)
    if mode == "exact":
        return drop_exact_duplicates(frame)
    raise ValueError(f"dedup must be one of {', '.join(DEDUP_MODES)}, got {mode!r}")


def drop_items_without_meta(frame: pd.DataFrame, meta_items: Collection[str]) -> tuple[pd.DataFrame, str]:
    """The rows whose item has a metadata record, and a note of what was dropped ("" if nothing)."""
    has_meta = frame["item"].isin(set(meta_items))
    if has_meta.all():
        log.info("require_meta: every item has a metadata record")
        return frame, ""
    note = (f"require_meta dropped {int((~has_meta).sum())} interaction(s) of "
            f"{frame.loc[~has_meta, 'item'].nunique()} item(s) without a metadata record "
            f"(of {len(frame)} interactions, {frame['item'].nunique()} items)")
    log.info("%s", note)
    return frame[has_meta], note


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


def kcore(frame: pd.DataFrame, k: int, *, setting: str = "kcore", before: str = "") -> pd.DataFrame:
    """Largest sub-table where every user and every item has at least ``k`` rows.

    An empty result raises :class:`KCoreError` naming ``setting`` (the config
    key, e.g. ``datasets.baby.kcore``) and the counts before and after each
    pass; ``before`` (what an earlier filter removed) is added to the message.
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
        earlier = f" Before the k-core, {before}." if before else ""
        raise KCoreError(f"{setting}={k}: the k-core filter left no interactions; users/items/interactions "
                         f"before -> after each pass: {passes}. Lower {setting} or check the input.{earlier}")
    log.info("%d-core after %d round(s): %d users, %d items, %d interactions (from %d)",
             k, len(history), *history[-1], len(frame))
    if len(history) > 1:
        log.debug("k-core passes (users/items/interactions): %s", _history_text(history, most=len(history)))
    return current


def filter_interactions(frame: pd.DataFrame, k: int, *, setting: str = "kcore", dedup: str = "pair",
                        meta_items: Collection[str] | None = None) -> pd.DataFrame:
    """The ``filter`` step: :func:`deduplicate` (``dedup``), with ``meta_items`` (``require_meta``) only the
    items in it, then the k-core (``setting`` names it in errors), fresh index."""
    current = deduplicate(frame.reset_index(drop=True), dedup)
    note = ""
    if meta_items is not None:
        current, note = drop_items_without_meta(current, meta_items)
    return kcore(current, k, setting=setting, before=note).reset_index(drop=True)
