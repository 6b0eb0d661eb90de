"""The features rules' input/params helpers (sgp4sr.features.rules)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from sgp4sr.features.rules import FeatureRuleError, FeatureRules

CONFIG = {
    "datasets": {
        "baby": {
            "source": "amazon2014", "category": "Baby",
            "files": {"image_features": {"url": "http://x.org/image_features_Baby.b"}},
            "modalities": {"image": {"encoder": "published"}, "text": {"encoder": "sentence"}},
            "noise_ratios": [0.2, 0.5],
        },
        "split": {"source": "benchmark", "name": "my split", "path": "/data/with space",
                  "modalities": {"image": {"encoder": "benchmark"}}},
        "office": {"source": "amazon2014", "category": "Office",
                   "modalities": {"image": {"encoder": "clip", "pretrained": "openai"},
                                  "text": {"encoder": "clip", "input": "text"}}},
        "bare": {"source": "benchmark", "name": "b", "path": "/b"},
    }
}


def wc(dataset, modality=None):
    return SimpleNamespace(dataset=dataset, modality=modality)


@pytest.fixture
def rules():
    return FeatureRules(CONFIG, "res")


def test_targets_cover_manifest_matrices_and_noise(rules):
    targets = rules.targets("baby")
    assert targets[0] == "results/baby/features/manifest.parquet"
    assert "results/baby/features/image.npy" in targets and "results/baby/features/text@noise0.5.npy" in targets
    assert len(targets) == 1 + 2 * 3
    assert "results/office/features/image@noise0.1.npy" in rules.targets("office")  # default ratios
    assert rules.targets("bare") == []


def test_source_files_and_their_shell_argument(rules):
    assert rules.source_input(wc("baby", "image")) == ["res/downloads/baby/image_features_Baby.b"]
    assert rules.source_arg(wc("baby", "text")) == "" and rules.source_input(wc("baby", "text")) == []
    assert rules.source_arg(wc("split", "image")) == "--source-file '/data/with space/my split.image.npy'"
    with pytest.raises(FeatureRuleError, match="dataset 'baby' has no modality 'audio'; configured: image, text"):
        rules.source(wc("baby", "audio"))


def test_params_carry_resolved_defaults_and_resources(rules):
    cfg = json.loads(rules.config_json(wc("office", "image")))
    assert cfg["input"] == "image" and cfg["pretrained"] == "openai" and cfg["fallback"] == "mean"
    assert json.loads(rules.config_json(wc("office", "text")))["input"] == "text"
    assert rules.runtime(wc("office", "image")) > rules.runtime(wc("office", "text"))
    assert rules.mem_mb(wc("baby", "image")) >= 2000
    assert rules.cache_dir(wc("baby")) == "res/images/baby"
    assert rules.manifest_inputs(wc("office")) == ["results/office/features/image.manifest.parquet",
                                                   "results/office/features/text.manifest.parquet"]


def test_pixel_encoders_take_the_raw_images_and_have_resources():
    config = {"datasets": {"demo": {"source": "demo", "modalities": {
        "image": {"encoder": "histogram"}, "text": {"encoder": "sentence"}}}}}
    rules = FeatureRules(config, "res")
    assert rules.image_inputs(wc("demo", "image")) == ["res/downloads/demo/images"]
    assert rules.image_inputs(wc("demo", "text")) == []
    assert rules.mem_mb(wc("demo", "image")) == 2000 and rules.runtime(wc("demo", "image")) == 60
    assert rules.iisan_inputs(wc("demo")) == {"item_table": "results/demo/data/items.parquet",
                                              "images": ["res/downloads/demo/images"]}
