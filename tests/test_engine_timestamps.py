"""Interaction times flow from the split to the model's batches (time-aware models such as HM4SR)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sgp4sr.data.load import load_split
from sgp4sr.data.split import write_split
from sgp4sr.engine.evaluate import eval_inputs, rank_users
from sgp4sr.engine.sequences import epoch_batches, iterate_batches, training_examples
from sgp4sr.models.base import Batch, SequentialRecommender


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for u in range(20):
        n = int(rng.integers(4, 9))
        items = rng.choice(np.arange(1, 31), size=n, replace=False)
        times = 1_400_000_000 + np.cumsum(rng.integers(1, 10_000, size=n))
        rows += [(f"u{u}", f"i{i}", int(t), 5.0) for i, t in zip(items, times)]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])


def test_split_times_align_with_items(tmp_path):
    frame = _frame()
    write_split(tmp_path, frame)
    split = load_split(tmp_path)
    lookup = {(u, i): t for u, i, t in frame[["user", "item", "timestamp"]].itertuples(index=False)}
    for u in range(split.n_users):
        user = split.user_tokens[u]
        items = list(split.train_seqs[u]) + [split.valid_items[u], split.test_items[u]]
        times = list(split.train_times[u]) + [split.valid_times[u], split.test_times[u]]
        assert times == [lookup[(user, split.item_tokens[i])] for i in items]
        assert times == sorted(times)


def test_examples_and_batches_carry_aligned_times():
    seqs = [np.array([3, 4, 5, 6]), np.array([7, 8])]
    times = [np.array([10, 20, 30, 40]), np.array([50, 60])]
    for form in ("onepass", "prefix"):
        ex = training_examples(seqs, 3, form, n_items=10, train_times=times)
        assert ex.times is not None and ex.times.shape == ex.seq.shape
        assert ((ex.times != 0) == (ex.seq != 0)).all()
        # every (item, time) pair in a row is a pair of the user's sequence
        pairs = {(int(i), int(t)) for s, ts in zip(seqs, times) for i, t in zip(s, ts)}
        assert {(int(i), int(t)) for i, t in zip(ex.seq[ex.seq != 0], ex.times[ex.seq != 0])} <= pairs
        for batch in iterate_batches(ex, epoch_batches(ex, 2, np.random.default_rng(0))):
            assert batch.timestamps is not None and batch.timestamps.shape == batch.seq.shape
    assert training_examples(seqs, 3, "onepass", n_items=10).times is None


class _Recorder(SequentialRecommender):
    """Scores nothing useful; remembers the timestamps it was given."""

    def __init__(self) -> None:
        torch.nn.Module.__init__(self)
        self.n_items, self.seen = 10, []

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        self.seen.append((batch.seq.clone(), None if batch.timestamps is None else batch.timestamps.clone()))
        return self.mask_padding_scores(torch.zeros(batch.seq.size(0), self.n_items))


def test_ranking_passes_test_input_times():
    seqs, times = [np.array([3, 4]), np.array([5])], [np.array([10, 20]), np.array([30])]
    valid_items, valid_times = np.array([6, 7]), np.array([25, 35])
    model = _Recorder()
    rank_users(model, eval_inputs(seqs, valid_items, "test"), np.array([1, 2]), 4, 8, torch.device("cpu"),
               times=eval_inputs(times, valid_times, "test"))
    seq, ts = model.seen[0]
    got = {(int(i), int(t)) for i, t in zip(seq[seq != 0], ts[seq != 0])}
    assert got == {(3, 10), (4, 20), (6, 25), (5, 30), (7, 35)}
