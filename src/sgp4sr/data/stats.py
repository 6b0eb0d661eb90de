"""Dataset statistics in the shape of the paper's Table 1, with the paper's row alongside.

Convention (stated in the file too): ``users`` = users in the split,
``items`` = real items (the padding index 0 is not counted), ``interactions``
= every user-item event after filtering including the validation and test
items, ``avg_length`` = interactions / users, ``sparsity`` = 1 -
interactions / (users * items). This is how the paper's Baby row (19,445 /
7,050 / 160,792) is counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

CONVENTION = (
    "users: users in the split; items: real items, padding index 0 excluded; interactions: every "
    "user-item event after filtering, including the validation and test items; avg_length = "
    "interactions / users; sparsity = 1 - interactions / (users * items)"
)


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
    stats["convention"] = CONVENTION
    if paper:
        row = dict(paper)
        if {"users", "items", "interactions"} <= set(row):
            full = table_row(row["users"], row["items"], row["interactions"])
            row = {**full, **row}
        stats["paper"] = row
        stats["matches_paper"] = all(stats[k] == row[k] for k in ("users", "items", "interactions") if k in row)
    return stats
