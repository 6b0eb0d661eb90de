"""Reference rows of Table 2 that are not models: a popularity lower bound and, on generated data, an oracle.

* ``popularity``: every user gets the items ranked by their number of
  interactions in the training part of the split (the same for everyone). Any
  model that learns something beats it; a model at this level has learned
  nothing but the item distribution (RecBole's ``Pop``).
* ``oracle``: for a demo dataset, the generator's own next-item law
  (:class:`sgp4sr.data.demo.NextItemLaw`) evaluated at each user's input with
  the user's true interests. No model can know more, so it bounds what a model
  can reach. It is near-exact rather than exact: the split's k-core filter may
  remove items from a sequence, and same-day events may be reordered by the
  split, which the law does not see.

Both are written in a run's layout (``results/<ds>/runs/<bound>/default/seed1/``:
``metrics.json`` with ``valid``/``test`` metrics and ``"bound": true``, and
``ranks.parquet``), ranked as :mod:`sgp4sr.engine.evaluate` ranks: over every
real item, ties counted against the target. The report shows them beside the
models, marked, and never counts them as a model (no marks, not a baseline).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sgp4sr.io import write_json, write_parquet

log = logging.getLogger(__name__)

BOUNDS = ("popularity", "oracle")


def ranks_of(scores: np.ndarray, target: int) -> int:
    """``1 + #{real items i != target: score_i >= score_target}`` (index 0 is padding)."""
    real = scores[1:]
    return int((real >= scores[target]).sum())  # counts the target itself once: that is the "1 +"


def popularity_ranks(split) -> tuple[np.ndarray, np.ndarray]:
    """Valid and test ranks of every user under the training-part popularity ranking."""
    counts = np.bincount(np.concatenate([np.asarray(s, np.int64) for s in split.train_seqs]),
                         minlength=split.n_items).astype(np.float64)
    valid = np.array([ranks_of(counts, int(t)) for t in split.valid_items])
    test = np.array([ranks_of(counts, int(t)) for t in split.test_items])
    return valid, test


def oracle_ranks(split, truth_dir: str | Path, category: str) -> tuple[np.ndarray, np.ndarray]:
    """Valid and test ranks under the demo generator's next-item law (see the module docstring)."""
    from sgp4sr.data.demo import load_law

    law, asins, interests = load_law(truth_dir, category)
    position = {asin: i for i, asin in enumerate(asins)}
    tokens = [str(t) for t in split.item_tokens[1:]]
    unknown = [t for t in tokens if t not in position]
    if unknown:
        raise ValueError(f"{truth_dir}: the split has items the demo generator did not write, e.g. {unknown[:3]} "
                         "(was the split built from other demo data?)")
    pos_of_idx = np.array([-1] + [position[t] for t in tokens], dtype=np.int64)
    missing_users = [u for u in split.user_tokens if str(u) not in interests]
    if missing_users:
        raise ValueError(f"{truth_dir}: no interests for users {missing_users[:3]} (other demo data?)")

    def rank(user: int, history: np.ndarray, target: int) -> int:
        seen = np.zeros(len(asins), dtype=bool)
        seen[pos_of_idx[history]] = True
        p = law.distribution(int(pos_of_idx[history[-1]]), interests[str(split.user_tokens[user])], seen)
        scores = np.zeros(split.n_items)
        if p is not None:
            scores[1:] = p[pos_of_idx[1:]]
        scores[0] = -np.inf
        return ranks_of(scores, target)

    valid, test = [], []
    for u, seq in enumerate(split.train_seqs):
        seq = np.asarray(seq, np.int64)
        valid.append(rank(u, seq, int(split.valid_items[u])))
        test.append(rank(u, np.append(seq, split.valid_items[u]), int(split.test_items[u])))
    return np.array(valid), np.array(test)


def write_bound(kind: str, data: str | Path, out: str | Path, topk: Sequence[int] = (5, 10, 20, 50),
                truth_dir: str | Path | None = None, category: str = "Demo") -> dict:
    """Compute bound ``kind`` on the split in ``data``; write ``metrics.json`` and ``ranks.parquet`` into ``out``."""
    from sgp4sr.data.load import load_split
    from sgp4sr.engine.evaluate import metrics_from_ranks

    if kind not in BOUNDS:
        raise ValueError(f"unknown bound {kind!r}; known: {', '.join(BOUNDS)}")
    split = load_split(data)
    if kind == "popularity":
        valid, test = popularity_ranks(split)
    else:
        if truth_dir is None:
            raise ValueError("the oracle needs the demo generator's truth files (--truth)")
        valid, test = oracle_ranks(split, truth_dir, category)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "ranks.parquet",
                  pd.DataFrame({"user_idx": np.arange(split.n_users), "valid_rank": valid, "test_rank": test}))
    metrics = {"model": kind, "variant": "default", "seed": 1, "bound": True,
               "valid": metrics_from_ranks(valid, topk), "test": metrics_from_ranks(test, topk),
               "n_users": split.n_users, "n_items": split.n_items - 1}
    write_json(out / "metrics.json", metrics)
    log.info("%s on %s: test %s", kind, data, {k: round(v, 4) for k, v in metrics["test"].items()})
    return metrics
