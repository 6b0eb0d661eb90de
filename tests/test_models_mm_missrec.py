"""MISSRec: shapes, padding, determinism, interest tokens from clustering, a short training."""

from __future__ import annotations

import pytest
import torch

from mm_fixtures import (check_determinism, check_padding_invariance, check_scores, one_pass, planted,
                         popularity_recall, train_briefly)
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.missrec import kmeans

MISSRec = get_model_class("missrec")


@pytest.fixture(scope="module")
def data():
    return planted(seed=3)


def build(data, **kw):
    params = dict(hidden_size=32, layers=2, heads=2, inner_size=32, dropout=0.1, seed=5)
    params.update(kw)
    return MISSRec(data.ctx, **params)


def test_scores_shape_and_pad(data):
    check_scores(build(data), data)


def test_padding_invariance(data):
    check_padding_invariance(build(data), data)


def test_determinism(data):
    check_determinism(lambda: build(data), data)


def test_missing_image_is_named(data):
    ctx = ModelContext(n_items=data.ctx.n_items, max_len=12, features={"text": data.ctx.features["text"]},
                       extra={"dataset": "shop"})
    with pytest.raises(ValueError, match="missrec needs the 'image' features; shop provides: text"):
        MISSRec(ctx)


def test_kmeans_recovers_planted_clusters():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = centres.repeat_interleave(20, 0) + 0.1 * torch.randn(60, 2, generator=gen)
    best = None
    for s in range(5):  # Lloyd's from random starts: the best of a few finds the planted split
        labels, cents = kmeans(points, 3, 10, torch.Generator().manual_seed(s))
        err = ((points - cents[labels]) ** 2).sum()
        best = (err, labels) if best is None or err < best[0] else best
    labels = best[1]
    for block in labels.view(3, 20):
        assert (block == block[0]).all()
    assert len(set(labels.view(3, 20)[:, 0].tolist())) == 3


def test_interest_tokens_come_from_the_clustering(data):
    torch.manual_seed(0)
    model = build(data, interest_ratio=0.1).eval()
    model.discover_interests()
    n = data.ctx.n_items - 1
    assert model.n_interests == 8  # ceil(2 * 40 * 0.1)
    lookup = model.interest_lookup
    assert lookup[:, 0].eq(0).all() and lookup[:, 1:].ge(1).all() and lookup.le(model.n_interests).all()
    # each interest embedding is the mean of the adapted vectors assigned to it
    with torch.no_grad():
        points = torch.cat([model.adapted(m)[1:] for m in model.modalities])
    labels = torch.cat([lookup[i, 1:] for i in range(2)])
    for c in labels.unique():
        torch.testing.assert_close(model.interest_embeddings[c], points[labels == c].mean(0), rtol=1e-4, atol=1e-5)
    # a sequence's tokens are exactly the distinct interests of its items, in both modalities
    seq = data.seqs[:3]
    tokens = model.interest_tokens(seq)
    for row, tok in zip(seq, tokens):
        items = row[row != 0]
        expected = set(lookup[0, items].tolist()) | set(lookup[1, items].tolist())
        got = tok[tok != 0].tolist()
        assert sorted(got) == sorted(expected) and len(got) == len(set(got))
    assert n == lookup.size(1) - 1


def test_interests_are_rediscovered_each_epoch(data):
    model = build(data)
    batch = one_pass(data, torch.arange(8))
    model.train()
    model.calculate_loss(batch)
    model.calculate_loss(batch)
    assert int(model.discoveries) == 1  # once per epoch, not per step
    model.eval()
    model.full_sort_predict(Batch(seq=data.seqs[:2]))
    assert int(model.discoveries) == 1  # evaluation reuses the epoch's interests
    model.train()
    model.calculate_loss(batch)
    assert int(model.discoveries) == 2
    # the interests travel with the weights (the engine restores the best state)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    other = build(data)
    other.load_state_dict(state)
    other.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(other.full_sort_predict(Batch(seq=data.seqs[:4])),
                                   model.full_sort_predict(Batch(seq=data.seqs[:4])))
    assert int(other.discoveries) == 2


def test_layers_must_be_even(data):
    with pytest.raises(ValueError, match="even"):
        build(data, layers=3)


@pytest.mark.slow
def test_short_training_beats_popularity():
    small = planted(seed=3, n_users=160)
    torch.manual_seed(0)
    model = build(small, hidden_size=16, dropout=0.1, interest_ratio=0.2)
    recall = train_briefly(model, small, epochs=6, lr=5e-3, batch_size=160)
    pop = popularity_recall(small)
    assert recall > pop + 0.3, (recall, pop)


def test_chunked_prefix_loss_keeps_the_regulariser_and_interests(data):
    torch.manual_seed(0)
    whole = build(data, prefix_chunk=10**6)
    whole.discover_interests()
    chunked = build(data, prefix_chunk=5)
    chunked.load_state_dict(whole.state_dict())
    chunked._stale = False
    whole.eval()
    chunked.eval()
    batch = one_pass(data, torch.arange(10))
    a, b = whole.calculate_loss(batch), chunked.calculate_loss(batch)
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    torch.testing.assert_close(whole.adaptors["text"].weight.grad, chunked.adaptors["text"].weight.grad,
                               rtol=1e-4, atol=1e-6)


def test_pretrain_loss_rediscovers_interests_each_epoch_and_trains_every_part(data):
    torch.manual_seed(0)
    model = build(data, transductive=False)
    assert model.item_embedding is None
    seq = data.seqs[:8, :-1]
    target = torch.zeros_like(seq)
    target[:, -1] = data.seqs[:8, -1]
    augmented = torch.cat([torch.zeros_like(seq[:, :1]), seq[:, :-1]], dim=1)
    model.train()
    loss = model.pretrain_loss(Batch(seq, target), Batch(augmented), 1e-3)
    assert torch.isfinite(loss) and int(model.discoveries) == 1
    loss.backward()
    for name in ("adaptors.text.weight", "adaptors.image.weight", "fusion_factor",
                 "transformer.decoder.layers.0.linear1.weight", "transformer.encoder.layers.0.linear1.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    model.pretrain_loss(Batch(seq, target), Batch(augmented), 1e-3)
    assert int(model.discoveries) == 1  # once per epoch: no validation in pre-training, so ...
    model.start_epoch()  # ... the loop marks each new epoch
    model.pretrain_loss(Batch(seq, target), Batch(augmented), 1e-3)
    assert int(model.discoveries) == 2
