"""IISAN: hidden-state cache from the frozen encoders (random CLIP, bundled MiniLM), side
adapters trainable while the encoders stay frozen, shapes, padding, determinism, training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mm_fixtures import (check_determinism, check_padding_invariance, check_scores, planted, popularity_recall,
                         synthetic_cache, train_briefly)
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.iisan import build_hidden_state_cache, side_layers

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


# ---- the cache from the real (randomly initialised / bundled) frozen encoders --------------------
@pytest.fixture(scope="module")
def encoders():
    from sgp4sr.features.clip import load_clip
    from sgp4sr.features.text import load_sentence_model

    return load_sentence_model("sentence-transformers/all-MiniLM-L6-v2", "cpu"), \
        load_clip("ViT-B-32", None, seed=0, device="cpu")


@pytest.mark.slow
def test_hidden_state_cache_matches_the_frozen_encoders(tmp_path, encoders):
    from PIL import Image

    text_model, clip = encoders
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1, 6):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)).save(path)
        rows.append({"item_idx": i, "item": f"it{i}", "title": f"red cotton thing {i}" if i != 3 else "",
                     "description": "", "categories": "", "brand": "", "image_url": str(path) if i != 4 else ""})
    items_path = tmp_path / "items.parquet"
    pd.DataFrame(rows).to_parquet(items_path)
    out = build_hidden_state_cache(items_path, tmp_path / "hidden.npz", images_dir=tmp_path / "cache",
                                   text_encoder=text_model, image_encoder=clip, batch_size=2)
    z = np.load(out)
    assert z["text"].shape == (6, 7, 384) and z["image"].shape == (6, 13, 768)
    assert z["text_found"].tolist() == [False, True, True, False, True, True]
    assert z["image_found"].tolist() == [False, True, True, True, False, True]
    assert not z["text"][[0, 3]].any() and not z["image"][[0, 4]].any()
    # the last pooled text state, normalised, is exactly what the sentence model returns
    texts = [rows[i]["title"] for i in (0, 1, 3, 4)]
    expected = text_model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    last = z["text"][[1, 2, 4, 5], -1].astype(np.float32)
    np.testing.assert_allclose(last / np.linalg.norm(last, axis=1, keepdims=True), expected, atol=2e-3)
    # the last class-token state through CLIP's head is CLIP's image embedding
    visual = clip.model.visual
    with torch.no_grad():
        img = Image.open(tmp_path / "img1.png").convert("RGB")
        direct = clip.model.encode_image(clip.preprocess(img)[None]).numpy()[0]
        cls = torch.from_numpy(z["image"][1, -1].astype(np.float32))
        via_cache = (visual.ln_post(cls) @ visual.proj).numpy()
    np.testing.assert_allclose(via_cache, direct, rtol=2e-2, atol=2e-2)
