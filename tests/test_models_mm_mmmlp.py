"""MMMLP: shapes, padding, determinism, the mixer mechanics and a short training."""

from __future__ import annotations

import pytest
import torch

from mm_fixtures import (check_determinism, check_padding_invariance, check_scores, one_pass, planted,
                         popularity_recall, train_briefly)
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.mm_blocks import expand_prefixes

MMMLP = get_model_class("mmmlp")


@pytest.fixture(scope="module")
def data():
    return planted(seed=1)


def build(data, **kw):
    params = dict(hidden_size=32, layers=2, dropout=0.1)
    params.update(kw)
    return MMMLP(data.ctx, **params)


def test_scores_shape_and_pad(data):
    check_scores(build(data), data)


def test_padding_invariance(data):
    check_padding_invariance(build(data), data)


def test_determinism(data):
    check_determinism(lambda: build(data), data)


def test_missing_modality_is_named(data):
    ctx = ModelContext(n_items=data.ctx.n_items, max_len=12, features={"image": data.ctx.features["image"]},
                       extra={"dataset": "shop"})
    with pytest.raises(ValueError, match="mmmlp needs the 'text' features; shop provides: image"):
        MMMLP(ctx)


def test_token_mixer_sees_earlier_items(data):
    """The ID stream alone must depend on an older item (the token mixer mixes positions)."""
    torch.manual_seed(0)
    model = build(data, modalities=()).eval()
    seq = data.seqs[:4].clone()
    changed = seq.clone()
    changed[:, -3] = (changed[:, -3] % (data.ctx.n_items - 1)) + 1
    with torch.no_grad():
        a = model.full_sort_predict(Batch(seq=seq))
        b = model.full_sort_predict(Batch(seq=changed))
    assert (a[:, 1:] - b[:, 1:]).abs().max() > 1e-6


def test_one_pass_loss_equals_prefix_rows(data):
    """A one-pass batch is trained exactly as its expanded prefix rows (no future leak)."""
    torch.manual_seed(0)
    model = build(data).eval()
    batch = one_pass(data, torch.arange(6))
    prefixes = expand_prefixes(batch)
    assert len(prefixes.seq) == int((batch.target != 0).sum())
    # each prefix ends with the item just before its target and holds nothing after it
    rows, cols = torch.nonzero(batch.target, as_tuple=True)
    assert torch.equal(prefixes.seq[:, -1], batch.seq[rows, cols])
    assert torch.equal(prefixes.target[:, -1], batch.target[rows, cols])
    with torch.no_grad():
        torch.testing.assert_close(model.calculate_loss(batch), model.calculate_loss(prefixes))


def test_future_items_do_not_change_training_loss_of_earlier_targets(data):
    torch.manual_seed(0)
    model = build(data).eval()
    batch = one_pass(data, torch.arange(6))
    only_early = batch.target.clone()
    only_early[:, -1] = 0
    changed = batch.seq.clone()
    changed[:, -1] = 1
    with torch.no_grad():
        a = model.calculate_loss(Batch(seq=batch.seq, target=only_early))
        b = model.calculate_loss(Batch(seq=changed, target=only_early))
    torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_short_training_beats_popularity(data):
    small = planted(seed=1, n_users=160)
    torch.manual_seed(0)
    model = build(small, hidden_size=16, layers=1, dropout=0.1)
    recall = train_briefly(model, small, epochs=6, lr=5e-3, batch_size=160)
    pop = popularity_recall(small)
    assert recall > pop + 0.3, (recall, pop)


def test_chunked_checkpointed_prefix_loss_equals_the_whole_batch(data):
    """Memory-bounded chunks give the same loss and the same gradients."""
    torch.manual_seed(0)
    whole = build(data, prefix_chunk=10**6).eval()  # eval: no dropout, so both passes are comparable
    chunked = build(data, prefix_chunk=7).eval()
    chunked.load_state_dict(whole.state_dict())
    batch = one_pass(data, torch.arange(10))
    a, b = whole.calculate_loss(batch), chunked.calculate_loss(batch)
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    for (name, p), q in zip(whole.named_parameters(), chunked.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
