"""``encoder: histogram``: the colour + gradient descriptor (features/handcrafted.py) and its wiring."""

from __future__ import annotations

import colorsys
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features_fixtures import make_items
from sgp4sr.config import ConfigError, validate_config
from sgp4sr.features.build import build_modality, resolve_modality
from sgp4sr.features.handcrafted import (HistogramEncoder, describe, descriptor_dim, gradient_histograms,
                                         rgb_to_hsv)

ROOT = Path(__file__).resolve().parents[1]
HISTOGRAM = {"encoder": "histogram", "batch_size": 3, "fallback": "mean"}


def _build(root: Path, items: pd.DataFrame, cfg: dict = HISTOGRAM):
    return build_modality(items, "image", cfg, download_dir=root / "downloads", cache_dir=root / "cache",
                          progress=False)


def _cosines(rows: np.ndarray) -> np.ndarray:
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit @ unit.T


def test_hsv_matches_colorsys_and_orientations_land_in_their_bins():
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3)).astype(np.uint8)
    rgb[:4] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 255]]
    expected = np.array([colorsys.rgb_to_hsv(*(v / 255)) for v in rgb])
    np.testing.assert_allclose(rgb_to_hsv(rgb), expected, atol=1e-12)
    stripes = np.zeros((1, 16, 16))
    stripes[:, ::4, :] = 1  # horizontal stripes: vertical gradients, 90 degrees = the centre of bin 4 of 9
    hog = gradient_histograms(stripes, gradient_bins=9, gradient_cells=1)
    assert hog.shape == (1, 9) and hog[0, 4] > 0 and np.count_nonzero(hog) == 1
    assert descriptor_dim() == 12 * 3 * 3 + 9 * 3 * 3 == HistogramEncoder().dim


def test_features_shape_manifest_fallback_and_determinism(tmp_path):
    items = make_items(tmp_path, per_category=4)
    matrix, manifest = _build(tmp_path, items)
    assert matrix.shape == (len(items) + 1, descriptor_dim()) and matrix.dtype == np.float32
    assert not matrix[0].any()
    # The same manifest rows as the clip image path: one status per item, the fallback where not found.
    failed = {"Xcorrupt": "undecodable", "Xtiny": "tiny", "Xgone": "missing", "Xnourl": "no_url"}
    status = items["item"].map(failed).fillna("ok")
    expected = pd.DataFrame({"item": items["item"], "modality": "image",
                             "found": status == "ok", "source": np.where(items["item"] == "Xnourl", "none", "local"),
                             "status": status, "fallback": np.where(status == "ok", "", "mean")})
    pd.testing.assert_frame_equal(manifest[expected.columns].reset_index(drop=True), expected, check_dtype=False)
    good, bad = (manifest.loc[mask, "item_idx"].to_numpy() for mask in (manifest["found"], ~manifest["found"]))
    np.testing.assert_allclose(np.linalg.norm(matrix[good], axis=1), 1, atol=1e-5)
    assert len(np.unique(matrix[good].round(5), axis=0)) == len(good)
    for row in bad:
        np.testing.assert_allclose(matrix[row], matrix[good].mean(axis=0), atol=1e-6)
    # Deterministic and independent of batching and of decoding threads; `zero` fallback leaves zeros.
    again, _ = build_modality(items, "image", {**HISTOGRAM, "batch_size": 64, "fallback": "zero"},
                              download_dir=tmp_path / "downloads", cache_dir=tmp_path / "cache", threads=2,
                              progress=False)
    np.testing.assert_array_equal(again[good], matrix[good])
    assert not again[bad].any()


def test_knobs_change_the_dimension_and_text_input_is_refused(tmp_path):
    items = make_items(tmp_path, per_category=2, failures=False)
    cfg = {**HISTOGRAM, "resize": 32, "colour_bins": [8, 4, 4], "gradient_bins": 6, "gradient_cells": 2,
           "hellinger": False}
    matrix, _ = _build(tmp_path, items, cfg)
    assert matrix.shape == (len(items) + 1, 8 * 4 * 4 + 6 * 2 * 2)
    with pytest.raises(ValueError, match="histogram reads images only"):
        resolve_modality({"encoder": "histogram", "input": "text"})
    with pytest.raises(ValueError, match="cells"):
        HistogramEncoder(resize=2, gradient_cells=3)


def _family(rng: np.random.Generator, n: int, reddish: bool, size: int = 48) -> np.ndarray:
    """Reddish images with vertical stripes, or bluish ones with dots; colours, spacing and offsets jittered."""
    from PIL import Image, ImageDraw

    out = []
    for _ in range(n):
        hue = (0.0 if reddish else 0.62) + rng.normal(0, 0.02)
        fg = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue % 1, rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9)))
        img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(215, 256, 3)))
        draw = ImageDraw.Draw(img)
        step, offset = int(rng.integers(6, 10)), int(rng.integers(0, 6))
        for x in range(offset, size, step):
            if reddish:
                draw.rectangle((x, 0, x + step // 2, size), fill=fg)
            else:
                for y in range(offset, size, step):
                    draw.ellipse((x, y, x + step // 2, y + step // 2), fill=fg)
        out.append(np.asarray(img))
    return np.stack(out)


def test_two_image_families_are_separated_by_a_margin():
    rng = np.random.default_rng(3)
    rows = describe(np.concatenate([_family(rng, 12, True), _family(rng, 12, False)]))
    label = np.repeat([0, 1], 12)
    cos = _cosines(rows.astype(np.float64))
    same = (label[:, None] == label[None]) & ~np.eye(len(label), dtype=bool)
    within, between = cos[same].mean(), cos[label[:, None] != label[None]].mean()
    # Measured: within 0.855, between 0.489 (margin 0.37; 0.35-0.37 over seeds 0-3).
    assert within - between > 0.25, (within, between)
    # Every image's nearest neighbour is of its own family.
    np.fill_diagonal(cos, -np.inf)
    assert (label[cos.argmax(axis=1)] == label).all()


def test_schema_accepts_the_histogram_encoder():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    demo = next(name for name, ds in config["datasets"].items() if ds.get("source") == "demo")
    config["datasets"][demo]["modalities"]["image"] = {"encoder": "histogram", "resize": 48,
                                                       "colour_bins": [8, 4, 4], "gradient_bins": 9,
                                                       "gradient_cells": 2, "hellinger": False}
    validate_config(config)
    bad = copy.deepcopy(config)
    bad["datasets"][demo]["modalities"]["image"]["colour_bins"] = [8, 4]
    with pytest.raises(ConfigError, match="colour_bins"):
        validate_config(bad)
