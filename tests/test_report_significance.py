"""Per-user metrics from ranks and the paired Wilcoxon test on constructed ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sgp4sr.report.significance import paired_wilcoxon, per_user_metric, seed_averaged_user_metric
from report_fixtures import ranks_with_quality


def _write_ranks(path, test_rank, users=None):
    users = np.arange(len(test_rank)) if users is None else users
    pd.DataFrame({"user_idx": users, "valid_rank": test_rank, "test_rank": test_rank}).to_parquet(path)
    return path


def test_per_user_metric_definitions():
    ranks = np.array([1, 3, 10, 11])
    assert per_user_metric(ranks, "recall@10").tolist() == [1, 1, 1, 0]
    assert per_user_metric(ranks, "ndcg@10") == pytest.approx([1.0, 0.5, 1 / np.log2(11), 0.0])
    with pytest.raises(ValueError, match="1-based"):
        per_user_metric(np.array([0, 1]), "ndcg@10")
    with pytest.raises(ValueError, match="recall@10 or ndcg@10"):
        per_user_metric(ranks, "mrr@10")


def test_seed_average_is_per_user_mean(tmp_path):
    a = _write_ranks(tmp_path / "a.parquet", np.array([1, 20, 3]))
    b = _write_ranks(tmp_path / "b.parquet", np.array([20, 20, 1]), users=np.array([0, 1, 2]))
    avg = seed_averaged_user_metric([a, b], "ndcg@10")
    assert avg.tolist() == pytest.approx([0.5, 0.0, 0.75])
    c = _write_ranks(tmp_path / "c.parquet", np.array([1, 2]))
    with pytest.raises(ValueError, match="c.parquet: ranks a different set of users"):
        seed_averaged_user_metric([a, c], "ndcg@10")


def test_better_model_is_significant_and_equal_is_not():
    rng = np.random.default_rng(1)
    strong = pd.Series(per_user_metric(ranks_with_quality(rng, 500, 0.7), "ndcg@10"))
    weak = pd.Series(per_user_metric(ranks_with_quality(rng, 500, 0.3), "ndcg@10"))
    result = paired_wilcoxon(strong, weak)
    assert result["p_value"] < 1e-10 and result["mean_a"] > result["mean_b"]
    assert result["p_value"] == pytest.approx(stats.wilcoxon(strong, weak).pvalue)
    # a copy with a few users swapped either way: no consistent difference
    noisy = strong.copy()
    noisy.iloc[:20] = strong.iloc[20:40].to_numpy()
    assert paired_wilcoxon(strong, noisy)["p_value"] > 0.05
    same = paired_wilcoxon(strong, strong)
    assert same["p_value"] == 1.0 and same["n_nonzero"] == 0


def test_pairs_are_aligned_by_user():
    a = pd.Series([0.0, 0.5, 1.0, 0.2, 0.9, 0.7], index=[0, 1, 2, 3, 4, 5])
    shuffled = a.sample(frac=1.0, random_state=0)
    assert paired_wilcoxon(a, shuffled)["n_nonzero"] == 0
    with pytest.raises(ValueError, match="different users"):
        paired_wilcoxon(a, a.iloc[:3])
