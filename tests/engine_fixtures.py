"""Planted sequential data for the engine tests, written as a bare RecBole benchmark folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
N_USERS, N_GROUPS, GROUP = 240, 4, 15


def write_planted_split(folder: Path, seed: int = 0, n_users: int = N_USERS) -> None:
    """Users walk through one group of items in a fixed cyclic order, so the next item is
    predictable from the last one, while every item is about equally popular."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        g, length, start = rng.integers(N_GROUPS), rng.integers(5, 12), rng.integers(GROUP)
        seq = [str(g * GROUP + (start + k) % GROUP + 1) for k in range(length)]
        train = seq[:-2]
        rows["train"] += [f"{u}\t{' '.join(train[:j])}\t{train[j]}" for j in range(1, len(train))]
        rows["valid"].append(f"{u}\t{' '.join(train)}\t{seq[-2]}")
        rows["test"].append(f"{u}\t{' '.join(train + [seq[-2]])}\t{seq[-1]}")
    folder.mkdir(parents=True, exist_ok=True)
    for part, lines in rows.items():
        (folder / f"planted.{part}.inter").write_text(HEADER + "\n".join(lines) + "\n")
