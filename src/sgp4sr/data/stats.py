"""Dataset statistics in the shape of the paper's Table 1, with the paper's row alongside.

Convention (stated in the file too): ``users`` = users in the split,
``items`` = real items (the padding index 0 is not counted), ``interactions``
= every user-item event after filtering including the validation and test
items, ``avg_length`` = interactions / users, ``sparsity`` = 1 -
interactions / (users * items). This is how the paper's Baby row (19,445 /
7,050 / 160,792) is counted. ``unseen_valid_targets`` / ``unseen_test_targets``
count the users whose validation / test item occurs in no training event: an
ID model can never rank such an item right (:func:`unseen_targets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

CONVENTION = (
    "users: users in the split; items: real items, padding index 0 excluded; interactions: every "
    "user-item event after filtering, including the validation and test items; avg_length = "
    "interactions / users; sparsity = 1 - interactions / (users * items); unseen_valid_targets / "
    "unseen_test_targets: users whose validation / test item is in no training event"
)
UNSEEN_POLICIES = ("keep", "drop")  # config datasets.<ds>.unseen_targets


def unseen_targets(users: Any, items: Any, part: Any) -> dict[str, np.ndarray]:
    """``valid`` / ``test`` -> the users whose target of that part is in no ``train`` event.

    ``users``, ``items`` and ``part`` are aligned columns of one long table
    (tokens or indices alike); ``part`` holds ``train`` / ``valid`` / ``test``.
    """
    users, items, part = (np.asarray(c) for c in (users, items, part))
    seen = pd.Index(pd.unique(items[part == "train"]))
    result = {}
    for name in ("valid", "test"):
        rows = part == name
        result[name] = users[rows][~pd.Index(items[rows]).isin(seen)]
    return result


def table_row(users: int, items: int, interactions: int) -> dict[str, float | int]:
    return {
        "users": int(users),
        "items": int(items),
        "interactions": int(interactions),
        "avg_length": interactions / users if users else 0.0,
        "sparsity": 1.0 - interactions / (users * items) if users and items else 1.0,
    }


def compute_stats(data_dir: str | Path, paper: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Stats of a data folder; ``paper`` (config ``paper_stats``) is completed and compared."""
    data_dir = Path(data_dir)
    inter = pd.read_parquet(data_dir / "interactions.parquet", columns=["user_idx", "item_idx", "part"])
    n_items = len(pd.read_parquet(data_dir / "items.parquet", columns=["item_idx"]))
    stats: dict[str, Any] = table_row(inter["user_idx"].nunique(), n_items, len(inter))
    stats["train_interactions"] = int((inter["part"] == "train").sum())
    unseen = unseen_targets(inter["user_idx"], inter["item_idx"], inter["part"])
    stats["unseen_valid_targets"], stats["unseen_test_targets"] = len(unseen["valid"]), len(unseen["test"])
    stats["convention"] = CONVENTION
    if paper:
        row = dict(paper)
        if {"users", "items", "interactions"} <= set(row):
            full = table_row(row["users"], row["items"], row["interactions"])
            row = {**full, **row}
        stats["paper"] = row
        stats["matches_paper"] = all(stats[k] == row[k] for k in ("users", "items", "interactions") if k in row)
    return stats
