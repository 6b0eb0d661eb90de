"""The demo has structure that content can exploit and an ID model cannot fully learn (issue 16), and
the report's reference rows (popularity, oracle) rank as the engine ranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgp4sr.data.demo import generate_demo, load_law
from sgp4sr.data.kcore import filter_interactions
from sgp4sr.data.load import load_split
from sgp4sr.data.parse import parse_meta, parse_reviews
from sgp4sr.data.split import write_split
from sgp4sr.report.bounds import oracle_ranks, popularity_ranks, ranks_of, write_bound

SHOP = {"n_users": 700, "n_items": 360, "n_categories": 6, "interests_per_user": [1, 3], "min_length": 5,
        "max_length": 20, "subtopic_progression": 1.0, "complement_rate": 0.2, "image_size": 48}


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    generate_demo(out, SHOP, seed=5)
    return out


@pytest.fixture(scope="module")
def sequences(shop):
    """Each user's generated sequence as law positions, and the law."""
    law, asins, interests = load_law(shop, "Demo")
    reviews = parse_reviews(shop / "reviews_Demo_5.json.gz")
    pos = {a: i for i, a in enumerate(asins)}
    seqs = {u: [pos[a] for a in group["item"]] for u, group in reviews.groupby("user", sort=True)}
    return law, interests, seqs


def _recall10(ranks) -> float:
    return float((np.asarray(ranks) <= 10).mean())


def _rank(scores: np.ndarray, target: int) -> int:
    return 1 + int((np.delete(scores, target) >= scores[target]).sum())


def markov_ranks(law, interests, seqs):
    """Test ranks of the oracle, an ID-level first-order Markov model (item -> item transition counts, the
    popularity breaking ties) and the same model given the true content (category, sub-topic): it backs off
    from the item transitions to the label transitions, spread evenly over a label's items; with each
    target's training count."""
    n = len(law.pop)
    counts = np.zeros(n)
    pair_ids = np.zeros((n, n))
    labels = law.item_cat * 4 + law.item_sub  # the true content: category and sub-topic
    pair_labels = np.zeros((labels.max() + 1, labels.max() + 1))
    for s in seqs.values():
        counts[s[:-1]] += 1
        for a, b in zip(s[:-2], s[1:-1]):
            pair_ids[a, b] += 1
            pair_labels[labels[a], labels[b]] += 1
    oracle, by_id, by_content, tail = [], [], [], []
    for u, s in seqs.items():
        history, target = s[:-1], s[-1]
        seen = np.zeros(n, dtype=bool)
        seen[history] = True
        oracle.append(_rank(law.distribution(history[-1], interests[u], seen), target))
        last = history[-1]
        ids = pair_ids[last] + counts * 1e-6
        label_next = pair_labels[labels[last]] / max(pair_labels[labels[last]].sum(), 1.0)
        content = pair_ids[last] + (label_next / np.bincount(labels, minlength=len(label_next)))[labels]
        ids[seen], content[seen] = -1.0, -1.0
        by_id.append(_rank(ids, target))
        by_content.append(_rank(content, target))
        tail.append(counts[target])
    return tuple(map(np.array, (oracle, by_id, by_content, tail)))


def test_id_model_stays_below_the_oracle_and_content_wins_on_tail_targets(sequences):
    oracle, by_id, by_content, tail = markov_ranks(*sequences)
    assert _recall10(oracle) - _recall10(by_id) > 0.1  # headroom above an ID-only model
    rare = tail <= np.quantile(tail, 0.25)  # the least-seen quarter of the targets
    assert _recall10(by_content[rare]) > _recall10(by_id[rare]) + 0.04  # content helps on the tail (0.07 measured)


def test_histogram_image_features_separate_categories_and_expose_wrong_images(shop):
    from sgp4sr.features.build import build_modality, read_items

    truth = pd.read_csv(shop / "truth_Demo.csv")
    meta = parse_meta(shop / "meta_Demo.json.gz")
    items = meta.reset_index(drop=True).assign(item_idx=lambda f: np.arange(1, len(f) + 1))
    path = shop.parent / f"{shop.name}_items.parquet"
    items.to_parquet(path)
    matrix, manifest = build_modality(read_items(path), "image", {"encoder": "histogram"}, seed=0,
                                      download_dir=shop, cache_dir=shop.parent / f"{shop.name}_cache")
    feats = matrix[1:] / np.linalg.norm(matrix[1:], axis=1, keepdims=True)
    shown = truth.set_index("asin").loc[items["item"], "image_category"].to_numpy()
    wrong = truth.set_index("asin").loc[items["item"], "wrong_image"].to_numpy(bool)
    own = truth.set_index("asin").loc[items["item"], "category"].to_numpy()
    cos = feats @ feats.T
    same = shown[:, None] == shown[None, :]
    off = ~np.eye(len(feats), dtype=bool)
    margin = cos[same & off].mean() - cos[~same].mean()
    assert margin > 0.05
    # wrong-image items sit far from their (true) category's clean centre
    centre = {c: feats[(own == c) & ~wrong].mean(0) for c in np.unique(own)}
    score = np.array([feats[i] @ centre[own[i]] for i in range(len(feats))])
    pos, neg = score[~wrong], score[wrong]
    auc = (pos[:, None] > neg[None, :]).mean()
    assert wrong.any() and auc > 0.9


@pytest.fixture(scope="module")
def split_dir(shop, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split")
    write_split(out, filter_interactions(parse_reviews(shop / "reviews_Demo_5.json.gz"), 5),
                parse_meta(shop / "meta_Demo.json.gz"))
    return out


def test_bounds_rank_as_the_engine_and_bracket_an_id_model(shop, split_dir, tmp_path):
    split = load_split(split_dir)
    assert ranks_of(np.array([-np.inf, 3.0, 3.0, 1.0]), 2) == 2  # a tie counts against the target
    valid, test = popularity_ranks(split)
    counts = np.bincount(np.concatenate(split.train_seqs), minlength=split.n_items)
    best = int(np.argmax(counts[1:])) + 1
    assert test[split.test_items == best].tolist() == [1] * int((split.test_items == best).sum())
    o_valid, o_test = oracle_ranks(split, shop, "Demo")
    assert o_test.min() >= 1 and o_test.max() <= split.n_items - 1
    assert _recall10(o_test) > _recall10(test) + 0.2
    metrics = write_bound("oracle", split_dir, tmp_path / "runs" / "oracle" / "default" / "seed1", (10,), shop)
    assert metrics["bound"] and metrics["test"]["recall@10"] == pytest.approx(_recall10(o_test))
    ranks = pd.read_parquet(tmp_path / "runs" / "oracle" / "default" / "seed1" / "ranks.parquet")
    assert ranks["test_rank"].tolist() == o_test.tolist()
    assert json.loads((tmp_path / "runs" / "oracle" / "default" / "seed1" / "metrics.json").read_text())["bound"]


def test_oracle_refuses_other_demo_data(shop, split_dir, tmp_path):
    generate_demo(tmp_path, {**SHOP, "n_users": 40, "n_items": 30}, seed=9)
    with pytest.raises(ValueError, match="did not write"):
        oracle_ranks(load_split(split_dir), tmp_path, "Demo")
