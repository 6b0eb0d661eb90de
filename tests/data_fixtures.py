"""Small generated inputs for the data-stage tests (no network, nothing from ../shared)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

TINY_DEMO = {
    "n_users": 150,
    "n_items": 50,
    "n_categories": 4,
    "interests_per_user": [1, 2],
    "min_length": 5,
    "max_length": 12,
    "transition_coherence": 0.8,
    "irrelevant_word_rate": 0.2,
    "image_clutter_rate": 0.2,
    "wrong_image_rate": 0.2,
    "image_size": 16,
}


def write_gz_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def review_2014(user: str, item: str, t: int, rating: float = 5.0) -> str:
    """A 2014-style Python-literal review line."""
    return repr({"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": t,
                 "reviewText": "it's fine", "summary": "ok"})


def review_2018(user: str, item: str, t: int, rating: float = 4.0) -> str:
    """A 2018-style strict JSON review line."""
    return json.dumps({"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": t,
                       "verified": True, "style": {"Size:": " Large"}})


def random_interactions(seed: int, n_users: int = 60, n_items: int = 30, n: int = 900) -> pd.DataFrame:
    """Interactions with repeats and many equal timestamps (day resolution)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user": [f"U{u}" for u in rng.integers(n_users, size=n)],
        "item": [f"I{i}" for i in rng.zipf(1.6, size=n) % n_items],
        "timestamp": rng.integers(0, 20, size=n).astype(np.int64) * 86400,
        "rating": rng.integers(1, 6, size=n).astype(np.float32),
    })


def write_benchmark_folder(folder: Path, name: str, seqs: dict[str, list[str]], *, with_train: bool = True) -> Path:
    """A RecBole benchmark split (train prefixes, valid, test) of full sequences ``seqs``."""
    folder.mkdir(parents=True, exist_ok=True)
    train, valid, test = [HEADER], [HEADER], [HEADER]
    for user, seq in seqs.items():
        tr = seq[:-2]
        # Longest prefix first, as in the authors' files.
        for j in range(len(tr) - 1, 0, -1):
            train.append(f"{user}\t{' '.join(tr[:j])}\t{tr[j]}\n")
        valid.append(f"{user}\t{' '.join(tr)}\t{seq[-2]}\n")
        test.append(f"{user}\t{' '.join(seq[:-1])}\t{seq[-1]}\n")
    if with_train:
        (folder / f"{name}.train.inter").write_text("".join(train))
    (folder / f"{name}.valid.inter").write_text("".join(valid))
    (folder / f"{name}.test.inter").write_text("".join(test))
    return folder
