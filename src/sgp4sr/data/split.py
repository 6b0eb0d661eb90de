"""Chronological leave-one-out split and the ``results/<ds>/data/`` folder.

Per user, interactions are ordered by timestamp; equal timestamps keep their
input order (Amazon times are day-resolution, so ties are common and the
order must not depend on the sort algorithm). Last item = test, second last
= validation, the rest = training. Users with fewer than 3 interactions
cannot be split this way and are dropped (never happens after a k-core with
k >= 3). Index mapping follows :mod:`sgp4sr.data.ids`.

Users whose validation or test item occurs in no training event are counted
and logged; config ``unseen_targets: drop`` removes them (repeatedly: a
removed user's training events may have been the only sight of another
user's target), ``keep`` (the default, the paper's protocol) leaves them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from sgp4sr.data.ids import item_index, token_array, user_index
from sgp4sr.data.load import INTER_HEADER
from sgp4sr.data.stats import UNSEEN_POLICIES, unseen_targets
from sgp4sr.io import atomic_path, write_parquet

log = logging.getLogger(__name__)

META_COLUMNS = ("title", "description", "categories", "brand", "image_url")


def order_and_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """Index and split ``frame``: table sorted by user then position, user map, item map."""
    frame = frame.reset_index(drop=True)
    sizes = frame["user"].map(frame["user"].value_counts())
    short = sizes < 3
    if short.any():
        log.warning("dropping %d user(s) with fewer than 3 interactions (leave-one-out needs 3)",
                    frame.loc[short, "user"].nunique())
        frame = frame[~short].reset_index(drop=True)
    if frame.empty:
        raise ValueError("no user has 3 or more interactions; nothing to split")
    # Unique values first: iterating a 100k-row (arrow) string column in Python is slow.
    users, items = user_index(frame["user"].unique().tolist()), item_index(frame["item"].unique().tolist())
    out = pd.DataFrame({
        "user_idx": frame["user"].map(users).astype(np.int32),
        "item_idx": frame["item"].map(items).astype(np.int32),
        "timestamp": frame["timestamp"].astype(np.int64),
        "rating": (frame["rating"] if "rating" in frame else pd.Series(np.nan, index=frame.index)).astype(np.float32),
        "_row": np.arange(len(frame)),
    })
    # Row number as the last key: equal timestamps keep input order whatever the sort does.
    out = out.sort_values(["user_idx", "timestamp", "_row"]).drop(columns="_row").reset_index(drop=True)
    out["position"] = out.groupby("user_idx").cumcount().astype(np.int32)
    length = out.groupby("user_idx")["position"].transform("size")
    part = np.full(len(out), "train", dtype=object)
    part[(out["position"] == length - 2).to_numpy()] = "valid"
    part[(out["position"] == length - 1).to_numpy()] = "test"
    out["part"] = part
    return out, users, items


def split_with_unseen_policy(frame: pd.DataFrame, unseen: str = "keep") -> tuple[pd.DataFrame, dict, dict]:
    """:func:`order_and_split`, counting users with unseen targets and, with ``unseen="drop"``, removing them."""
    if unseen not in UNSEEN_POLICIES:
        raise ValueError(f"unseen_targets must be one of {', '.join(UNSEEN_POLICIES)}, got {unseen!r}")
    dropped = 0
    while True:
        table, users, items = order_and_split(frame)
        found = unseen_targets(table["user_idx"], table["item_idx"], table["part"])
        bad = np.union1d(found["valid"], found["test"])
        if not len(bad):
            if not dropped:
                log.info("every validation and test item occurs in some training sequence")
            break
        log.warning("%d user(s) have a test item and %d a validation item never seen in training: %s",
                    len(found["test"]), len(found["valid"]),
                    "dropped (unseen_targets: drop)" if unseen == "drop" else "kept (unseen_targets: keep)")
        if unseen == "keep":
            break
        tokens = token_array(users, len(users))[bad]
        frame = frame[~frame["user"].isin(tokens)]
        dropped += len(bad)
        if frame.empty:
            raise ValueError(f"unseen_targets=drop removed every user ({dropped}); nothing to split")
    if dropped:
        log.info("unseen_targets=drop removed %d user(s) in all", dropped)
    return table, users, items


def _write_inter(path: Path, rows) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(INTER_HEADER + "\n")
        fh.writelines(rows)


def write_inter_files(out_dir: Path, table: pd.DataFrame, item_tokens: np.ndarray, user_tokens: np.ndarray) -> None:
    """RecBole atomic files with the original tokens (train = every prefix and its next item)."""
    train_rows, valid_rows, test_rows = [], [], []
    tokens = item_tokens[table["item_idx"].to_numpy()].tolist()
    user_idx = table["user_idx"].to_numpy()
    bounds = np.flatnonzero(np.diff(user_idx)) + 1
    for s, e in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(table)].tolist()):
        user = user_tokens[user_idx[s]]
        seq = tokens[s:e]
        train = seq[:-2]
        for j in range(1, len(train)):
            train_rows.append(f"{user}\t{' '.join(train[:j])}\t{train[j]}\n")
        valid_rows.append(f"{user}\t{' '.join(train)}\t{seq[-2]}\n")
        test_rows.append(f"{user}\t{' '.join(seq[:-1])}\t{seq[-1]}\n")
    _write_inter(out_dir / "train.inter", train_rows)
    _write_inter(out_dir / "valid.inter", valid_rows)
    _write_inter(out_dir / "test.inter", test_rows)


def write_split(out_dir: str | Path, frame: pd.DataFrame, meta: pd.DataFrame | None = None,
                unseen: str = "keep") -> pd.DataFrame:
    """Split ``frame`` (user, item, timestamp[, rating]) and write the whole data folder.

    ``unseen`` is the ``unseen_targets`` policy (:func:`split_with_unseen_policy`).
    """
    out_dir = Path(out_dir)
    table, users, items = split_with_unseen_policy(frame, unseen)
    user_tokens = token_array(users, len(users))
    item_tokens = token_array(items, len(items) + 1)

    item_table = pd.DataFrame({"item_idx": np.arange(1, len(item_tokens), dtype=np.int32),
                               "item": item_tokens[1:].astype(str)})
    if meta is not None and len(meta):
        meta = meta.drop_duplicates("item").set_index("item")
        for col in META_COLUMNS:
            values = meta[col] if col in meta else pd.Series(dtype=object)
            item_table[col] = item_table["item"].map(values).fillna("").astype(str)
        missing = int((~item_table["item"].isin(meta.index)).sum())
        if missing:
            log.warning("%d item(s) have no metadata; their text/image fields are empty", missing)
    else:
        for col in META_COLUMNS:
            item_table[col] = ""
    user_table = pd.DataFrame({"user_idx": np.arange(len(user_tokens), dtype=np.int32),
                               "user": user_tokens.astype(str)})

    write_parquet(out_dir / "items.parquet", item_table)
    write_parquet(out_dir / "users.parquet", user_table)
    write_parquet(out_dir / "interactions.parquet", table)
    write_inter_files(out_dir, table, item_tokens, user_tokens)
    log.info("split written to %s: %d users, %d items, %d interactions",
             out_dir, len(user_table), len(item_table), len(table))
    return table
