"""Made-up runs for the report tests: metrics.json and ranks.parquet at the contract's paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sgp4sr.io import write_json
from sgp4sr.report.significance import per_user_metric

KS = (5, 10, 20, 50)


def metrics_from_ranks(valid_rank: np.ndarray, test_rank: np.ndarray) -> dict:
    """A metrics.json whose means agree with the ranks (as the engine's do)."""
    def block(ranks):
        return {f"{n}@{k}": float(per_user_metric(ranks, f"{n}@{k}").mean()) for n in ("recall", "ndcg") for k in KS}

    return {"valid": block(valid_rank), "test": block(test_rank), "best_epoch": 3, "valid_curve": [0.1, 0.2]}


def write_run(root: Path, dataset: str, model: str, variant: str, seed: int, *, test: dict | None = None,
              valid: dict | None = None, test_rank: np.ndarray | None = None,
              valid_rank: np.ndarray | None = None) -> Path:
    """Write one run; either explicit metric blocks or ranks (from which the metrics follow)."""
    folder = root / "results" / dataset / "runs" / model / variant / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    if test_rank is not None:
        valid_rank = test_rank if valid_rank is None else valid_rank
        metrics = metrics_from_ranks(valid_rank, test_rank)
        pd.DataFrame({"user_idx": np.arange(len(test_rank), dtype=np.int32), "valid_rank": valid_rank,
                      "test_rank": test_rank}).to_parquet(folder / "ranks.parquet", index=False)
    else:
        metrics = {"test": test or {}, "valid": valid or {}, "best_epoch": 1}
    write_json(folder / "metrics.json", metrics)
    return folder / "metrics.json"


def ranks_with_quality(rng: np.random.Generator, n_users: int, hit_rate: float, n_items: int = 500) -> np.ndarray:
    """Ranks where about ``hit_rate`` of users have the target in the top 10."""
    good = rng.integers(1, 11, n_users)
    bad = rng.integers(11, n_items, n_users)
    return np.where(rng.random(n_users) < hit_rate, good, bad).astype(np.int64)
