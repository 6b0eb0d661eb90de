"""SASRec and GRU4Rec: shapes, padding invariance, causality, and the one-pass form's equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgp4sr.engine.sequences import make_batch, onepass_examples, prefix_examples
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.registry import get_model_class

N_ITEMS, MAX_LEN = 40, 12


def _model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    params = {"hidden_size": 16, "layers": 2, "dropout": 0.3}
    if name == "sasrec":
        params["heads"] = 2
    model = get_model_class(name)(ModelContext(n_items=N_ITEMS, max_len=MAX_LEN), **params)
    return model.eval()


def _padded(rows: list[list[int]], width: int) -> torch.Tensor:
    return torch.tensor([[0] * (width - len(r)) + r for r in rows])


@pytest.fixture(params=["sasrec", "gru4rec"])
def name(request) -> str:
    return request.param


def test_shapes_and_padding_column(name):
    model = _model(name)
    seq = _padded([[1, 2, 3], [4], [5, 6, 7, 8, 9]], 5)
    scores = model.full_sort_predict(Batch(seq))
    assert scores.shape == (3, N_ITEMS)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    model.train()
    target = torch.zeros_like(seq)
    target[:, -1] = torch.tensor([4, 5, 10])
    loss = model.calculate_loss(Batch(seq, target))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    item_table = model.embed.items.weight if name == "sasrec" else model.items.weight
    assert item_table.grad is not None and item_table.grad[1:].abs().sum() > 0


def test_more_left_padding_gives_the_same_scores(name):
    model = _model(name)
    rows = [[1, 2, 3], [4], [5, 6, 7, 8, 9]]
    narrow = model.full_sort_predict(Batch(_padded(rows, 5)))
    wide = model.full_sort_predict(Batch(_padded(rows, MAX_LEN)))
    torch.testing.assert_close(narrow, wide, rtol=1e-5, atol=1e-5)


def test_output_at_a_position_ignores_later_items(name):
    model = _model(name)
    seq = _padded([[3, 1, 4, 1, 5, 9, 2, 6]], 10)
    changed = seq.clone()
    changed[0, 7:] = torch.tensor([30, 31, 32])  # positions 7..9 change
    with torch.no_grad():
        a, b = model.encode(seq), model.encode(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[:, 7:], b[:, 7:])  # the test would notice a change


def test_onepass_loss_equals_the_mean_prefix_loss_without_dropout(name):
    """Spec §8: one pass with a target at every position = all prefix rows (up to dropout draws)."""
    model = _model(name)
    seqs = [np.array([3, 7, 1, 9, 12, 5]), np.array([2, 8, 11]), np.array([6, 6, 4, 13])]
    one, pre = onepass_examples(seqs, MAX_LEN), prefix_examples(seqs, MAX_LEN)
    with torch.no_grad():
        loss_one = model.calculate_loss(make_batch(one.seq, one.target, one.user, one.length))
        loss_pre = model.calculate_loss(make_batch(pre.seq, pre.target, pre.user, pre.length))
    torch.testing.assert_close(loss_one, loss_pre, rtol=1e-5, atol=1e-6)


def test_sasrec_rejects_sequences_longer_than_max_len():
    with pytest.raises(ValueError, match="max_len"):
        _model("sasrec").full_sort_predict(Batch(torch.ones(1, MAX_LEN + 1, dtype=torch.long)))


def test_gru4rec_initialises_as_recbole_by_default():
    """RecBole's GRU4Rec: xavier-normal item embeddings (std sqrt(2 / (n + d))), no GRU biases."""
    cls = get_model_class("gru4rec")
    ctx = ModelContext(n_items=2001, max_len=8)
    torch.manual_seed(0)
    model = cls(ctx, hidden_size=32)
    std = float(model.items.weight[1:].std())
    assert abs(std / (2 / (2001 + 32)) ** 0.5 - 1) < 0.05
    assert float(model.items.weight[0].abs().sum()) == 0.0
    assert not any("bias" in n for n, _ in model.gru.named_parameters())
    earlier = cls(ctx, hidden_size=32, init_scheme="trunc_normal")
    assert float(earlier.items.weight[1:].abs().max()) <= 0.04 + 1e-6  # truncated at 2 std of 0.02
    assert any("bias" in n for n, _ in earlier.gru.named_parameters())
    with pytest.raises(ValueError, match="init_scheme"):
        cls(ctx, init_scheme="xavier")
