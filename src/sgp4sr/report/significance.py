"""Per-user metrics from ranks and the paired Wilcoxon signed-rank test between two models.

Table 2's mean over users hides whether a gain is carried by a few users; the
paired test over users (each user's NDCG@10 under both models, averaged over
seeds first so seed noise does not count as independent evidence) says
whether the difference is consistent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """``recall@K`` / ``ndcg@K`` of each user from the target's 1-based rank (the engine's definition)."""
    name, _, k_text = metric.partition("@")
    if name not in ("recall", "ndcg") or not k_text.isdigit():
        raise ValueError(f"metric must look like recall@10 or ndcg@10, got {metric!r}")
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size and ranks.min() < 1:
        raise ValueError(f"ranks are 1-based; found {ranks.min():g}")
    hit = ranks <= int(k_text)
    if name == "recall":
        return hit.astype(np.float64)
    return np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)


def seed_averaged_user_metric(rank_files: Iterable[str | Path], metric: str, column: str = "test_rank") -> pd.Series:
    """Per-user ``metric`` averaged over the given runs (seeds), indexed by ``user_idx``.

    Every run must rank the same users; a run missing users would silently
    shrink the test, so that is an error naming the file.
    """
    per_seed = []
    users = None
    for path in rank_files:
        frame = pd.read_parquet(path, columns=["user_idx", column])
        if frame["user_idx"].duplicated().any():
            raise ValueError(f"{path}: duplicate user_idx rows")
        frame = frame.sort_values("user_idx")
        if users is None:
            users = frame["user_idx"].to_numpy()
        elif not np.array_equal(users, frame["user_idx"].to_numpy()):
            raise ValueError(f"{path}: ranks a different set of users than the other seeds")
        per_seed.append(per_user_metric(frame[column].to_numpy(), metric))
    if not per_seed:
        raise ValueError("no ranks files given")
    return pd.Series(np.mean(per_seed, axis=0), index=pd.Index(users, name="user_idx"), name=metric)


def paired_wilcoxon(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of per-user scores ``a`` vs ``b`` (same users).

    Users with equal scores (for NDCG@10 mostly users both models miss) carry
    no sign and are dropped (``zero_method='wilcox'``); ``n_nonzero`` says how
    many pairs the test rests on. With no differing pair the p-value is 1.
    """
    if not a.index.equals(b.index):
        if set(a.index) != set(b.index):
            raise ValueError(f"per-user scores cover different users ({len(a)} vs {len(b)})")
        b = b.reindex(a.index)
    diff = a.to_numpy() - b.to_numpy()
    nonzero = int(np.count_nonzero(diff))
    result = {"n_users": int(len(diff)), "n_nonzero": nonzero, "mean_a": float(a.mean()), "mean_b": float(b.mean())}
    if nonzero == 0:
        return {**result, "statistic": float("nan"), "p_value": 1.0}
    test = stats.wilcoxon(a.to_numpy(), b.to_numpy(), zero_method="wilcox", alternative="two-sided")
    return {**result, "statistic": float(test.statistic), "p_value": float(test.pvalue)}


def check_against_mean(per_user: pd.Series, reported: float, label: str, tol: float = 1e-4) -> None:
    """Warn when the ranks do not reproduce the run's own mean metric (a ties or K convention mismatch)."""
    if abs(float(per_user.mean()) - reported) > tol:
        log.warning("%s: mean per-user %s from ranks is %.6f but metrics.json says %.6f", label, per_user.name,
                    per_user.mean(), reported)
