"""IISAN's hidden-state cache from the real frozen encoders (random-weight CLIP ViT-B/32, the
bundled MiniLM): shapes, missing items, and agreement with the encoders' own outputs.

Separate from the model tests because loading the two encoders dominates its run time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sgp4sr.cli.main import main as sgp4sr_main


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
    # the command-line entry (as a rule would call it); the loaded encoders are reused (same load keys)
    out = tmp_path / "hidden.npz"
    assert sgp4sr_main(["features", "iisan-cache", "--items", str(items_path), "--images", str(tmp_path / "cache"),
                        "--out", str(out), "--device", "cpu"]) == 0
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
