"""Image fetching/decoding and the open_clip encoders (random ViT-B/32 weights, a few tiny images)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features_fixtures import make_items
from sgp4sr.features.build import build_modality
from sgp4sr.features.images import cache_name, fetch_images, load_image, url_kind

CLIP_RANDOM = {"encoder": "clip", "model": "ViT-B-32", "pretrained": None, "batch_size": 3, "fallback": "mean"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("shop")
    return root, make_items(root, per_category=2)


@pytest.fixture(scope="module")
def image_features(shop):
    root, items = shop
    return build_modality(items, "image", CLIP_RANDOM, seed=7, download_dir=root / "downloads",
                          cache_dir=root / "cache", device="cpu", progress=False)


def test_url_kinds():
    assert url_kind("") == "none" and url_kind("  ") == "none"
    assert url_kind("https://x.org/a.jpg") == "http" and url_kind("HTTP://x.org/a") == "http"
    assert url_kind("file:///tmp/a.jpg") == "file"
    assert url_kind("images/a.jpg") == "local" and url_kind("/abs/a.jpg") == "local"
    with pytest.raises(ValueError, match="unsupported image URL scheme 'ftp'"):
        url_kind("ftp://x.org/a.jpg")


def test_cache_name_is_safe_and_changes_with_the_url():
    a = cache_name("B0/01 x", "https://x.org/p/a.JPG?w=1")
    assert a.startswith("B0_01_x-") and a.endswith(".jpg") and "/" not in a
    assert cache_name("B001", "https://x.org/a.jpg") != cache_name("B001", "https://x.org/b.jpg")


@pytest.mark.slow
def test_image_features_shape_manifest_and_fallback(image_features, shop):
    _, items = shop
    matrix, manifest = image_features
    assert matrix.shape == (len(items) + 1, 512) and matrix.dtype == np.float32
    assert not matrix[0].any()
    by_item = manifest.set_index("item")
    expected = {"Xcorrupt": "undecodable", "Xtiny": "tiny", "Xgone": "missing", "Xnourl": "no_url"}
    for item, status in expected.items():
        assert by_item.loc[item, "status"] == status
        assert not by_item.loc[item, "found"] and by_item.loc[item, "fallback"] == "mean"
    assert by_item.loc["Xnourl", "source"] == "none" and by_item.loc["Xcorrupt", "source"] == "local"
    good = manifest.loc[manifest["found"], "item_idx"].to_numpy()
    bad = manifest.loc[~manifest["found"], "item_idx"].to_numpy()
    assert len(good) == 4 and (manifest.loc[manifest["found"], "fallback"] == "").all()
    # Different images give different rows; every fallback row is the mean of the found ones.
    assert len(np.unique(matrix[good].round(4), axis=0)) == len(good)
    for row in bad:
        np.testing.assert_allclose(matrix[row], matrix[good].mean(axis=0), atol=1e-5)


@pytest.mark.slow
def test_image_features_are_deterministic_and_independent_of_batching(image_features, shop, caplog):
    from sgp4sr.features.clip import load_clip

    root, items = shop
    load_clip.cache_clear()  # a fresh model from the same seed, not the cached one
    with caplog.at_level(logging.WARNING):
        again, _ = build_modality(items, "image", {**CLIP_RANDOM, "batch_size": 64}, seed=7,
                                  download_dir=root / "downloads", cache_dir=root / "cache", device="cpu",
                                  progress=False)
    assert "meaningless outside tests and demos" in caplog.text
    np.testing.assert_allclose(again, image_features[0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_clip_text_path(shop):
    items = shop[1].head(3)
    matrix, manifest = build_modality(items, "text", {**CLIP_RANDOM, "input": "text"}, seed=7,
                                      device="cpu", progress=False)
    assert matrix.shape == (len(items) + 1, 512)
    assert manifest["found"].all() and (manifest["source"] == "text").all()
    assert np.isfinite(matrix).all() and np.abs(matrix[1:]).sum(axis=1).min() > 0


@pytest.mark.slow
def test_other_seed_gives_other_random_weights():
    import torch

    from sgp4sr.features.clip import load_clip

    a = load_clip("ViT-B-32", None, seed=7, device="cpu").model.visual.conv1.weight
    b = load_clip("ViT-B-32", None, seed=8, device="cpu").model.visual.conv1.weight
    assert not torch.equal(a, b)


def test_load_image_statuses(shop):
    root, _ = shop
    images = root / "downloads" / "images"
    image, status = load_image(images / "B000000000.jpg", min_size=16)
    assert status == "ok" and image.mode == "RGB" and image.size == (32, 32)
    assert load_image(images / "B000000000.jpg", min_size=64) == (None, "tiny")
    assert load_image(images / "corrupt.jpg") == (None, "undecodable")
    assert load_image(images / "nothing-here.jpg") == (None, "missing")


def test_fetch_uses_file_urls_and_the_cache(tmp_path):
    items = make_items(tmp_path, failures=False).head(2).copy()
    src = tmp_path / "downloads" / "images" / f"{items.loc[0, 'item']}.jpg"
    items.loc[0, "image_url"] = src.resolve().as_uri()
    cache = tmp_path / "cache"
    first = fetch_images(items, tmp_path / "downloads", cache, progress=False)
    assert list(first["status"]) == ["ok", "ok"] and list(first["source"]) == ["file", "local"]
    assert all(Path(p).parent == cache and Path(p).is_file() for p in first["path"])
    for p in (tmp_path / "downloads" / "images").iterdir():
        p.unlink()  # the raw files are gone: the cache still serves them
    second = fetch_images(items, tmp_path / "downloads", cache, progress=False)
    assert list(second["status"]) == ["ok", "ok"]


def test_http_images_download_in_parallel_and_failures_are_recorded(tmp_path, monkeypatch):
    import io

    from PIL import Image

    import sgp4sr.data.download as download
    import sgp4sr.features.images as images

    calls = []
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(buffer, format="PNG")
    image_bytes = buffer.getvalue()

    def fake_download(url, dest, **kwargs):
        calls.append((url, kwargs))
        if "broken" in url:
            raise download.DownloadError(f"404 for {url}")
        Path(dest).write_bytes(image_bytes)
        return Path(dest)

    monkeypatch.setattr(download, "download_file", fake_download)
    monkeypatch.setattr(images, "remote_version", lambda url, timeout=None: None)  # no ETag: no network here
    items = pd.DataFrame({"item": ["a", "b", "c", "d"],
                          "image_url": ["https://x.org/a.jpg", "https://x.org/broken.jpg", "https://x.org/c.jpg",
                                        "ftp://x.org/d.jpg"]})
    frame = fetch_images(items, tmp_path, tmp_path / "cache", max_parallel=2, progress=False)
    assert list(frame["status"]) == ["ok", "download_error", "ok", "bad_url"]
    assert frame.loc[3, "source"] == "other"
    assert frame.loc[1, "path"] == "" and Path(frame.loc[0, "path"]).read_bytes() == image_bytes
    assert all(kw["progress"] is False for _, kw in calls) and len(calls) == 3
    fetch_images(items, tmp_path, tmp_path / "cache", max_parallel=2, progress=False)
    assert len(calls) == 4  # only the failed one is tried again; the others come from the cache
