"""The demo shop: deterministic bytes, the planted structure, and the data stage run on it."""

from __future__ import annotations

import ast
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_fixtures import TINY_DEMO
from sgp4sr.data.demo import FILLER, generate_demo
from sgp4sr.data.kcore import filter_interactions
from sgp4sr.data.load import load_split
from sgp4sr.data.parse import parse_meta, parse_reviews
from sgp4sr.data.split import write_split
from sgp4sr.data.stats import compute_stats


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo(out, TINY_DEMO, seed=11)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(shop, tmp_path):
    generate_demo(tmp_path / "again", TINY_DEMO, seed=11)
    assert _files(tmp_path / "again") == _files(shop)
    generate_demo(tmp_path / "other", TINY_DEMO, seed=12)
    assert _files(tmp_path / "other")["meta_Demo.json.gz"] != _files(shop)["meta_Demo.json.gz"]


def test_raw_format_is_2014_like(shop):
    with gzip.open(shop / "reviews_Demo_5.json.gz", "rt") as fh:
        first = fh.readline()
    assert first.startswith("{'reviewerID': ")  # a Python literal, not JSON
    review = ast.literal_eval(first)
    assert {"reviewerID", "asin", "overall", "unixReviewTime", "reviewText", "summary"} <= set(review)
    meta = parse_meta(shop / "meta_Demo.json.gz")
    assert len(meta) == TINY_DEMO["n_items"]
    assert (meta["image_url"] == "images/" + meta["item"] + ".jpg").all()
    assert meta["categories"].str.startswith("Demo > ").all()
    with Image.open(shop / meta["image_url"].iloc[0]) as img:
        assert img.size == (16, 16) and img.format == "JPEG"


def test_transitions_follow_categories(shop, tmp_path):
    truth = pd.read_csv(shop / "truth_Demo.csv").set_index("asin")
    reviews = parse_reviews(shop / "reviews_Demo_5.json.gz")
    cat = reviews["item"].map(truth["category"])
    same = (cat.shift() == cat)[reviews["user"].shift() == reviews["user"]].mean()
    assert same > 0.7
    generate_demo(tmp_path, {**TINY_DEMO, "transition_coherence": 0.0, "interests_per_user": [2, 2]}, seed=11)
    loose = parse_reviews(tmp_path / "reviews_Demo_5.json.gz")
    cat = loose["item"].map(pd.read_csv(tmp_path / "truth_Demo.csv").set_index("asin")["category"])
    assert (cat.shift() == cat)[loose["user"].shift() == loose["user"]].mean() < 0.2


def test_noise_knobs(tmp_path):
    clean = {**TINY_DEMO, "n_items": 200, "irrelevant_word_rate": 0.0, "wrong_image_rate": 0.0, "image_clutter_rate": 0.0}
    generate_demo(tmp_path / "clean", clean, seed=3)
    generate_demo(tmp_path / "noisy", {**clean, "irrelevant_word_rate": 0.5, "wrong_image_rate": 0.5}, seed=3)
    filler = set(FILLER)
    for name, lo, hi in (("clean", 0.0, 0.0), ("noisy", 0.1, 0.4)):
        words = " ".join(parse_meta(tmp_path / name / "meta_Demo.json.gz")["description"]).lower().replace(".", "").split()
        rate = np.mean([w in filler for w in words])
        assert lo <= rate <= hi, (name, rate)
    truth = pd.read_csv(tmp_path / "noisy" / "truth_Demo.csv")
    assert 0.35 < truth["wrong_image"].mean() < 0.65
    assert (truth["wrong_image"] == (truth["image_category"] != truth["category"])).all()

    # Images carry the category: nearest mean colour of the non-background pixels.
    def colour(folder, asin):
        px = np.asarray(Image.open(tmp_path / folder / "images" / f"{asin}.jpg").convert("RGB"), float).reshape(-1, 3)
        fg = px[px.min(axis=1) < 200]
        return fg.mean(axis=0) if len(fg) else px.mean(axis=0)

    clean_truth = pd.read_csv(tmp_path / "clean" / "truth_Demo.csv")
    feats = np.stack([colour("clean", a) for a in clean_truth["asin"]])
    labels = clean_truth["category"].to_numpy()
    centres = np.stack([feats[labels == c].mean(axis=0) for c in range(TINY_DEMO["n_categories"])])
    pred = np.argmin(((feats[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (pred == labels).mean() > 0.9
    noisy = np.stack([colour("noisy", a) for a in truth["asin"]])
    pred = np.argmin(((noisy[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    wrong = truth["wrong_image"].to_numpy()
    assert (pred[wrong] == truth["image_category"].to_numpy()[wrong]).mean() > 0.8
    assert (pred[wrong] == truth["category"].to_numpy()[wrong]).mean() < 0.1


def test_data_stage_end_to_end(shop, tmp_path):
    reviews = parse_reviews(shop / "reviews_Demo_5.json.gz")
    meta = parse_meta(shop / "meta_Demo.json.gz")
    kept = filter_interactions(reviews, 5)
    assert kept["user"].nunique() >= 0.9 * TINY_DEMO["n_users"]  # users survive the 5-core mostly
    write_split(tmp_path, kept, meta)
    data = load_split(tmp_path)
    stats = compute_stats(tmp_path)
    assert stats["users"] == data.n_users and stats["items"] == data.n_items - 1
    assert stats["interactions"] == len(kept)
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert (items["title"] != "").all() and (items["image_url"] != "").all()
    assert all((shop / url).exists() for url in items["image_url"])


def test_items_do_not_depend_on_user_settings(shop, tmp_path):
    """Items come from their own random stream: other users leave meta and images byte-identical."""
    generate_demo(tmp_path / "more", {**TINY_DEMO, "n_users": TINY_DEMO["n_users"] + 40, "complement_rate": 0.5},
                  seed=11)
    mine, theirs = _files(shop), _files(tmp_path / "more")
    same = [k for k in mine if k.startswith("images/") or k.startswith("meta_")]
    assert same and all(mine[k] == theirs[k] for k in same)
    assert mine["reviews_Demo_5.json.gz"] != theirs["reviews_Demo_5.json.gz"]


def _successor_concentration(folder: Path) -> float:
    """Share of each item's observed successors that are among its 3 most frequent ones."""
    reviews = parse_reviews(folder / "reviews_Demo_5.json.gz")
    same_user = reviews["user"].shift(-1) == reviews["user"]
    pairs = pd.DataFrame({"a": reviews["item"], "b": reviews["item"].shift(-1)})[same_user]
    counts = pairs.groupby(["a", "b"]).size().sort_values(ascending=False)
    top3 = counts.groupby(level=0).head(3).sum()
    return float(top3 / counts.sum())


def test_complements_plant_item_level_successors(shop, tmp_path):
    generate_demo(tmp_path / "comp", {**TINY_DEMO, "complement_rate": 0.9}, seed=11)
    truth = pd.read_csv(tmp_path / "comp" / "truth_Demo.csv")
    comps = truth.set_index("asin")["complements"].str.split()
    assert comps.map(len).eq(3).all()
    cat = truth.set_index("asin")["category"]
    assert all((cat[c] == cat[a]).all() for a, c in comps.items())  # complements stay in the category
    assert _successor_concentration(tmp_path / "comp") > _successor_concentration(shop) + 0.2
