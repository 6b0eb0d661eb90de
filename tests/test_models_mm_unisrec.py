"""UniSRec: shapes, padding, determinism, whitening and gating mechanics, a short training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mm_fixtures import (check_determinism, check_padding_invariance, check_scores, one_pass, planted,
                         popularity_recall, train_briefly)
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.mm_blocks import expand_prefixes

UniSRec = get_model_class("unisrec")


@pytest.fixture(scope="module")
def data():
    return planted(seed=2)


def build(data, **kw):
    params = dict(hidden_size=32, layers=2, heads=2, inner_size=32, dropout=0.1, attn_dropout=0.1)
    params.update(kw)
    return UniSRec(data.ctx, **params)


def test_scores_shape_and_pad(data):
    check_scores(build(data), data)


def test_padding_invariance(data):
    check_padding_invariance(build(data), data)


def test_determinism(data):
    check_determinism(lambda: build(data), data)


def test_missing_text_is_named(data):
    ctx = ModelContext(n_items=data.ctx.n_items, max_len=12, features={"image": data.ctx.features["image"]},
                       extra={"dataset": "shop"})
    with pytest.raises(ValueError, match="unisrec needs the 'text' features; shop provides: image"):
        UniSRec(ctx)


def test_whitening_is_centring_then_projection(data):
    torch.manual_seed(0)
    model = build(data).eval()
    expert = model.adaptor.experts[0]
    with torch.no_grad():
        expert.bias.normal_()
        x = model.text[1:6]
        torch.testing.assert_close(expert(x), (x - expert.bias) @ expert.lin.weight.T)
        # an input equal to the learned bias whitens to zero
        assert expert(expert.bias[None]).abs().max() < 1e-6


def test_mean_init_centres_the_whitened_features(data):
    model = build(data, whitening_init="mean").eval()
    centred = model.text[1:] - model.adaptor.experts[0].bias
    assert centred.mean(dim=0).abs().max() < 1e-5
    assert build(data).adaptor.experts[0].bias.abs().max() == 0  # the original's zero start
    with pytest.raises(ValueError, match="whitening_init"):
        build(data, whitening_init="pca")


def test_expert_gates_sum_to_one_and_noise_only_in_training(data):
    torch.manual_seed(0)
    model = build(data)
    with torch.no_grad():
        model.adaptor.w_gate.normal_()
        model.adaptor.w_noise.normal_()
    x = model.text[1:]
    model.train()
    g_train = model.adaptor.gates(x)
    torch.testing.assert_close(g_train.sum(-1), torch.ones(len(x)))
    assert not torch.allclose(g_train, model.adaptor.gates(x))  # noisy
    model.eval()
    g_eval = model.adaptor.gates(x)
    torch.testing.assert_close(g_eval.sum(-1), torch.ones(len(x)))
    torch.testing.assert_close(g_eval, (x @ model.adaptor.w_gate).softmax(-1))
    # adaptor output is the gate-weighted sum of the experts
    experts = torch.stack([e(x) for e in model.adaptor.experts], dim=1)
    torch.testing.assert_close(model.adaptor(x), (g_eval[..., None] * experts).sum(1))


def test_inductive_setting_has_no_id_embedding(data):
    model = build(data, transductive=False)
    assert model.item_embedding is None
    check_scores(model, data)


def test_one_pass_equals_prefix_rows(data):
    """Causal encoder with start-anchored positions: one pass = its prefixes."""
    torch.manual_seed(0)
    model = build(data).eval()
    batch = one_pass(data, torch.arange(8))
    with torch.no_grad():
        torch.testing.assert_close(model.calculate_loss(batch), model.calculate_loss(expand_prefixes(batch)))


@pytest.mark.slow
def test_short_training_beats_popularity():
    small = planted(seed=2, n_users=160)
    torch.manual_seed(0)
    model = build(small, hidden_size=16, layers=1, dropout=0.1)
    recall = train_briefly(model, small, epochs=6, lr=5e-3, batch_size=160)
    pop = popularity_recall(small)
    assert recall > pop + 0.3, (recall, pop)


def test_pretrain_loss_is_the_originals_contrastive_pair(data):
    """Seq-item + lambda * seq-seq InfoNCE; other rows with the same next item get logit 0, not removed."""
    torch.manual_seed(0)
    model = build(data, transductive=False).eval()
    seq = data.seqs[:6, :-1]
    target = torch.zeros_like(seq)
    target[:, -1] = data.seqs[:6, -1]
    target[1, -1] = target[0, -1]  # rows 0 and 1 share their next item
    augmented = torch.cat([torch.zeros_like(seq[:, :1]), seq[:, :-1]], dim=1)  # each row minus its newest item
    with torch.no_grad():
        loss = model.pretrain_loss(Batch(seq, target), Batch(augmented), 0.5)
        state = F.normalize(model.encode(seq)[:, -1], dim=-1)
        aug = F.normalize(model.encode(augmented)[:, -1], dim=-1)
        items = F.normalize(model.adaptor(model.text[target[:, -1]]), dim=-1)
    labels = torch.arange(6)

    def info_nce(other):
        logits = state @ other.T / model.temperature
        logits[0, 1] = logits[1, 0] = 0.0
        return F.cross_entropy(logits, labels)

    torch.testing.assert_close(loss, info_nce(items) + 0.5 * info_nce(aug))
    assert model.item_embedding is None and "item_embedding.weight" not in model.state_dict()
