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

from sgp4sr.data.rules import DEMO_CATEGORY
from sgp4sr.engine.settings import TrainConfig
from sgp4sr.io import write_json, write_parquet
from sgp4sr.report.plan import BOUNDS

log = logging.getLogger(__name__)

ROWS_PER_CHUNK = 512  # users ranked per call: bounds the (users, items) score block


def rank_rows(score_rows, targets: np.ndarray) -> np.ndarray:
    """Ranks of ``targets`` under ``score_rows(start, stop)`` -> (stop - start, n_items) scores, through the
    engine's ranking (:func:`sgp4sr.engine.evaluate.ranks_from_scores`: padding excluded, ties against the target)."""
    import torch

    from sgp4sr.engine.evaluate import ranks_from_scores

    out = []
    for start in range(0, len(targets), ROWS_PER_CHUNK):
        stop = min(start + ROWS_PER_CHUNK, len(targets))
        scores = torch.from_numpy(np.array(score_rows(start, stop), dtype=np.float64))
        out.append(ranks_from_scores(scores, torch.from_numpy(np.asarray(targets[start:stop], np.int64))).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def ranks_of(scores: np.ndarray, target: int) -> int:
    """``1 + #{real items i != target: score_i >= score_target}`` (index 0 is padding) for one score row."""
    return int(rank_rows(lambda start, stop: np.asarray(scores)[None], np.array([target]))[0])


def popularity_ranks(split) -> tuple[np.ndarray, np.ndarray]:
    """Valid and test ranks of every user under the training-part popularity ranking."""
    counts = np.bincount(np.concatenate([np.asarray(s, np.int64) for s in split.train_seqs]),
                         minlength=split.n_items).astype(np.float64)

    def rows(start: int, stop: int) -> np.ndarray:
        return np.broadcast_to(counts, (stop - start, len(counts)))

    return rank_rows(rows, split.valid_items), rank_rows(rows, split.test_items)


def oracle_ranks(split, truth_dir: str | Path, category: str = DEMO_CATEGORY) -> tuple[np.ndarray, np.ndarray]:
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

    def scores(user: int, history: np.ndarray) -> np.ndarray:
        seen = np.zeros(len(asins), dtype=bool)
        seen[pos_of_idx[history]] = True
        p = law.distribution(int(pos_of_idx[history[-1]]), interests[str(split.user_tokens[user])], seen)
        row = np.zeros(split.n_items)
        if p is not None:
            row[1:] = p[pos_of_idx[1:]]
        return row

    seqs = [np.asarray(s, np.int64) for s in split.train_seqs]
    valid = rank_rows(lambda a, b: [scores(u, seqs[u]) for u in range(a, b)], split.valid_items)
    test = rank_rows(lambda a, b: [scores(u, np.append(seqs[u], split.valid_items[u])) for u in range(a, b)],
                     split.test_items)
    return valid, test


def write_bound(kind: str, data: str | Path, out: str | Path, topk: Sequence[int] = TrainConfig().topk,
                truth_dir: str | Path | None = None, category: str = DEMO_CATEGORY) -> dict:
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
