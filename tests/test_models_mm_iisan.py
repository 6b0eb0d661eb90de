"""IISAN on a synthetic hidden-state cache: side adapters trainable while the encoder states stay
frozen, shapes, padding, determinism, a short training (the cache itself: test_models_mm_iisan_encoders)."""

from __future__ import annotations

import pytest
import torch

from mm_fixtures import (check_determinism, check_padding_invariance, check_scores, planted, popularity_recall,
                         synthetic_cache, train_briefly)
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.iisan import side_layers

IISAN = get_model_class("iisan")


@pytest.fixture(scope="module")
def data():
    return planted(seed=5)


@pytest.fixture(scope="module")
def cache(data, tmp_path_factory):
    return synthetic_cache(data, tmp_path_factory.mktemp("iisan") / "hidden.npz")


def build(data, cache, **kw):
    params = dict(hidden_size=32, layers=1, heads=2, dropout=0.1, adapter_size=16, hidden_states=cache)
    params.update(kw)
    return IISAN(data.ctx, **params)


def test_scores_shape_and_pad(data, cache):
    check_scores(build(data, cache), data)


def test_padding_invariance(data, cache):
    check_padding_invariance(build(data, cache), data)


def test_determinism(data, cache):
    check_determinism(lambda: build(data, cache), data)


def test_side_layers_skip_every_other_state():
    assert side_layers(13, 7) == [0, 2, 4, 6, 8, 10, 12]  # the original's LayerDrop on BERT/ViT
    assert side_layers(7, 4) == [0, 2, 4, 6]
    assert side_layers(13, 4) == [0, 4, 8, 12]


def test_missing_cache_is_a_clear_error(data, tmp_path):
    with pytest.raises(ValueError, match="hidden_states"):
        IISAN(data.ctx)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        IISAN(data.ctx, hidden_states=str(tmp_path / "none.npz"))
    other = ModelContext(n_items=5, max_len=12)
    with pytest.raises(ValueError, match="rebuild the cache"):
        IISAN(other, hidden_states=synthetic_cache(data, tmp_path / "h.npz"))


def test_adapters_train_while_encoder_states_stay_frozen(data, cache):
    torch.manual_seed(0)
    model = build(data, cache)
    names = [n for n, _ in model.named_parameters()]
    assert any("text_san.adapters" in n for n in names) and any("inter_san.gates" in n for n in names)
    assert not any("auto_model" in n or "visual" in n for n in names)  # no backbone weight is a parameter
    frozen = (model.text_states.clone(), model.image_states.clone())
    assert not model.text_states.requires_grad
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = Batch(seq=data.seqs[:16, :-1], target=data.seqs[:16, 1:] * (data.seqs[:16, :-1] != 0))
    model.calculate_loss(batch).backward()
    for name in ("text_san", "image_san", "inter_san"):
        san = getattr(model, name)
        assert all(a.down.weight.grad is not None and a.down.weight.grad.abs().sum() > 0 for a in san.adapters)
        assert san.gates.grad is not None and san.gates.grad.abs().sum() > 0
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any("adapters" in n for n in changed) and any("gates" in n for n in changed)
    assert torch.equal(model.text_states, frozen[0]) and torch.equal(model.image_states, frozen[1])
    # the gates start half open: sigmoid(0 / 0.1)
    assert torch.sigmoid(build(data, cache).text_san.gates / 0.1).eq(0.5).all()


@pytest.mark.slow
def test_short_training_beats_popularity(tmp_path):
    small = planted(seed=5, n_users=160)
    torch.manual_seed(0)
    model = build(small, synthetic_cache(small, tmp_path / "s.npz"), hidden_size=16)
    recall = train_briefly(model, small, epochs=6, lr=5e-3, batch_size=160)
    pop = popularity_recall(small)
    assert recall > pop + 0.3, (recall, pop)
