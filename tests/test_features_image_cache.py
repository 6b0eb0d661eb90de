"""The image cache follows the sources' content: regenerated local images, changed remote images (ETag)
and corrupt cached copies are fetched again; the features rule has the raw local images as inputs."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import sgp4sr.features.images as images
from features_fixtures import make_items
from sgp4sr.features.build import build_modality
from sgp4sr.features.images import cache_name, fetch_images
from sgp4sr.features.rules import FeatureRules


def png(colour: tuple[int, int, int], size: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


class MeanColourEncoder:
    """A stand-in for CLIP: each image's mean colour, so the features show which pixels were read."""

    dim = 3

    @staticmethod
    def preprocess(image):
        import torch

        return torch.tensor(np.asarray(image, dtype=np.float32).mean(axis=(0, 1)) / 255.0)

    def encode_image_batches(self, batches, total=None, progress=False):
        for batch in batches:
            yield batch.numpy()


@pytest.fixture
def fake_clip(monkeypatch):
    import sgp4sr.features.clip as clip

    monkeypatch.setattr(clip, "load_clip", lambda *args, **kwargs: MeanColourEncoder())


def encode(root: Path, items: pd.DataFrame) -> np.ndarray:
    matrix, _ = build_modality(items, "image", {"encoder": "clip", "pretrained": None}, seed=1,
                               download_dir=root / "downloads", cache_dir=root / "cache", device="cpu",
                               progress=False)
    return matrix


def test_regenerated_local_image_changes_the_features(tmp_path, fake_clip):
    items = make_items(tmp_path, failures=False, per_category=2)
    first = encode(tmp_path, items)
    source = tmp_path / "downloads" / items.loc[0, "image_url"]
    Image.new("RGB", (32, 32), (0, 0, 255)).save(source, quality=90)  # same path, other pixels
    second = encode(tmp_path, items)
    row = int(items.loc[0, "item_idx"])
    assert not np.allclose(first[row], second[row])
    np.testing.assert_allclose(second[row], [0, 0, 1], atol=0.02)
    others = items["item_idx"].to_numpy()[1:]
    np.testing.assert_array_equal(first[others], second[others])  # untouched images: the same rows
    # one cache entry per item: the superseded copy is gone
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == len(items) and sum(n.startswith(f"{items.loc[0, 'item']}-") for n in entries) == 1


def test_same_content_is_served_from_the_cache(tmp_path):
    items = make_items(tmp_path, failures=False, per_category=1)
    first = fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    stamps = [Path(p).stat().st_mtime_ns for p in first["path"]]
    source = tmp_path / "downloads" / items.loc[0, "image_url"]
    source.write_bytes(source.read_bytes())  # rewritten, same bytes: no new copy
    second = fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    assert list(second["path"]) == list(first["path"])
    assert [Path(p).stat().st_mtime_ns for p in second["path"]] == stamps


def test_corrupt_cached_copy_is_replaced(tmp_path, caplog):
    items = make_items(tmp_path, failures=False, per_category=1)
    first = fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    cached = Path(first.loc[0, "path"])
    cached.write_bytes(cached.read_bytes()[:40])  # a truncated copy
    with caplog.at_level(logging.WARNING):
        second = fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    assert second.loc[0, "status"] == "ok" and Path(second.loc[0, "path"]) == cached
    assert cached.read_bytes() == (tmp_path / "downloads" / items.loc[0, "image_url"]).read_bytes()
    assert "1 cached images could not be decoded and were fetched again; 0 still cannot be" in caplog.text


def test_corrupt_source_is_reported_once_fetched_again(tmp_path, caplog):
    items = make_items(tmp_path, per_category=1)
    fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    with caplog.at_level(logging.WARNING):
        frame = fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    assert "1 still cannot be (reported as undecodable): Xcorrupt" in caplog.text
    status = frame.set_index("item")["status"]
    assert status["Xcorrupt"] == "ok" and status["Xgone"] == "missing"  # the decode stage says 'undecodable'


def test_corrupt_copy_of_a_vanished_source_becomes_missing(tmp_path):
    items = make_items(tmp_path, failures=False, per_category=1)
    first = fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    Path(first.loc[0, "path"]).write_bytes(b"garbage")
    (tmp_path / "downloads" / items.loc[0, "image_url"]).unlink()
    frame = fetch_images(items, tmp_path / "downloads", tmp_path / "cache", progress=False)
    assert frame.loc[0, "status"] == "missing" and frame.loc[1, "status"] == "ok"


@pytest.fixture
def server(monkeypatch):
    """A fake image server: ``state.version`` is its ETag (None: it gives none), ``state.colour`` its image."""
    import sgp4sr.data.download as download

    state = SimpleNamespace(version="etag:1", colour=(200, 0, 0), downloads=[], heads=0, offline=False)

    def fake_download(url, dest, **kwargs):
        state.downloads.append(url)
        Path(dest).write_bytes(png(state.colour))
        return Path(dest)

    def fake_head(url, timeout=None):
        state.heads += 1
        if state.offline:
            raise OSError("network unreachable")
        return state.version

    monkeypatch.setattr(download, "download_file", fake_download)
    monkeypatch.setattr(images, "remote_version", fake_head)
    return state


HTTP_ITEMS = pd.DataFrame({"item": ["a", "b"], "image_url": ["https://x.org/a.png", "https://x.org/b.png"]})


def test_download_is_fetched_again_when_its_etag_changes(tmp_path, server):
    cache = tmp_path / "cache"
    first = fetch_images(HTTP_ITEMS, tmp_path, cache, progress=False)
    assert len(server.downloads) == 2 and first.loc[0, "path"].endswith(
        cache_name("a", "https://x.org/a.png", "etag:1"))
    fetch_images(HTTP_ITEMS, tmp_path, cache, progress=False)
    assert len(server.downloads) == 2  # same ETag: the cache serves them
    server.version, server.colour = "etag:2", (0, 200, 0)
    third = fetch_images(HTTP_ITEMS, tmp_path, cache, progress=False)
    assert len(server.downloads) == 4 and third.loc[0, "path"] != first.loc[0, "path"]
    with Image.open(third.loc[0, "path"]) as img:
        assert img.getpixel((0, 0)) == (0, 200, 0)
    assert sorted(p.name for p in cache.iterdir()) == sorted(Path(p).name for p in third["path"])


def test_unreachable_server_keeps_the_cached_downloads(tmp_path, server, caplog):
    cache = tmp_path / "cache"
    first = fetch_images(HTTP_ITEMS, tmp_path, cache, progress=False)
    server.offline, server.heads = True, 0
    with caplog.at_level(logging.WARNING):
        second = fetch_images(HTTP_ITEMS, tmp_path, cache, max_parallel=1, progress=False)
    assert list(second["path"]) == list(first["path"]) and len(server.downloads) == 2
    assert server.heads == 1 and caplog.text.count("cannot check cached image downloads") == 1


def test_corrupt_cached_download_is_downloaded_again(tmp_path, server):
    server.version = None  # a server without validators: the URL alone keys the entry
    cache = tmp_path / "cache"
    first = fetch_images(HTTP_ITEMS, tmp_path, cache, progress=False)
    Path(first.loc[1, "path"]).write_bytes(b"<html>rate limited</html>")
    second = fetch_images(HTTP_ITEMS, tmp_path, cache, progress=False)
    assert server.downloads == ["https://x.org/a.png", "https://x.org/b.png", "https://x.org/b.png"]
    assert list(second["status"]) == ["ok", "ok"] and Path(second.loc[1, "path"]).read_bytes() == png(server.colour)


def test_remote_version_prefers_the_etag(monkeypatch):
    class Response:
        def __init__(self, headers):
            self.headers = headers

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    answers = iter([{"ETag": '"abc"', "Last-Modified": "Tue, 01 Jul 2014 00:00:00 GMT"},
                    {"Last-Modified": "Tue, 01 Jul 2014 00:00:00 GMT"}, {}])
    seen = []

    def fake_urlopen(request, timeout):
        seen.append(request.get_method())
        return Response(next(answers))

    monkeypatch.setattr(images.urllib.request, "urlopen", fake_urlopen)
    assert images.remote_version("https://x.org/a.jpg") == 'etag:"abc"'
    assert images.remote_version("https://x.org/a.jpg") == "modified:Tue, 01 Jul 2014 00:00:00 GMT"
    assert images.remote_version("https://x.org/a.jpg") is None
    assert seen == ["HEAD"] * 3


CONFIG = {"datasets": {
    "demo": {"source": "demo", "modalities": {"image": {"encoder": "clip"}, "text": {"encoder": "sentence"}}},
    "local": {"source": "amazon2014", "category": "X",
              "modalities": {"image": {"encoder": "clip"}, "title": {"encoder": "clip", "input": "text"}}},
    "published": {"source": "amazon2014", "category": "Y",
                  "files": {"image_features": {"url": "http://x.org/f.b"}},
                  "modalities": {"image": {"encoder": "published"}}},
}}


def test_features_rule_reads_the_raw_local_images(tmp_path):
    rules = FeatureRules(CONFIG, str(tmp_path / "res"))
    wc = lambda ds, m: SimpleNamespace(dataset=ds, modality=m)  # noqa: E731
    assert rules.image_inputs(wc("demo", "image")) == [f"{tmp_path}/res/downloads/demo/images"]
    assert rules.image_inputs(wc("demo", "text")) == []
    assert rules.image_inputs(wc("local", "image")) == []  # no local images folder: downloads only
    folder = tmp_path / "res" / "downloads" / "local" / "images"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.jpg", "a.jpg", "sub/c.png", ".hidden"):
        (folder / name).write_bytes(b"x")
    assert rules.image_inputs(wc("local", "image")) == []  # listed once per DAG (one walk, not one per job)
    rules = FeatureRules(CONFIG, str(tmp_path / "res"))  # the next invocation's DAG
    assert rules.image_inputs(wc("local", "image")) == [f"{folder}/a.jpg", f"{folder}/b.jpg", f"{folder}/sub/c.png"]
    assert rules.image_inputs(wc("local", "title")) == [] and rules.image_inputs(wc("published", "image")) == []


def test_features_rule_declares_the_image_inputs():
    text = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "features.smk").read_text()
    rule = text[text.index("rule features:"):text.index("output:", text.index("rule features:"))]
    assert "images=FEATURES.image_inputs" in rule
