"""k-core and split invariants, and load_split on our folder and on bare benchmark folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_fixtures import random_interactions, write_benchmark_folder
from sgp4sr.data.benchmark import import_benchmark
from sgp4sr.data.ids import index_tokens, sort_tokens
from sgp4sr.data.kcore import drop_duplicates_keep_earliest, filter_interactions
from sgp4sr.data.load import SplitFormatError, _read_mapping, load_split, load_split_files, read_inter
from sgp4sr.data.split import order_and_split, write_split
from sgp4sr.data.stats import compute_stats


def test_index_tokens_numeric_vs_string():
    assert index_tokens(["10", "9", "0", "9"], start=1) == {"0": 1, "9": 2, "10": 3}
    # A leading zero makes the whole set string-ordered (ISBN-like ASINs stay distinct).
    assert sort_tokens(["10", "9", "007"]) == ["007", "10", "9"]
    assert index_tokens(["b", "a"]) == {"a": 0, "b": 1}


def test_dedup_keeps_earliest_then_input_order():
    df = pd.DataFrame({"user": ["u", "u", "u", "v"], "item": ["a", "a", "a", "a"],
                       "timestamp": [5, 3, 3, 1], "rating": [1.0, 2.0, 3.0, 4.0]})
    out = drop_duplicates_keep_earliest(df)
    assert out["rating"].tolist() == [2.0, 4.0]  # earliest time 3; of the tie the first row


@pytest.mark.parametrize("seed,k", [(0, 3), (1, 5), (2, 2)])
def test_kcore_invariants(seed, k):
    raw = random_interactions(seed)
    out = filter_interactions(raw, k)
    assert not out.duplicated(["user", "item"]).any()
    assert (out["user"].value_counts() >= k).all() and (out["item"].value_counts() >= k).all()
    again = filter_interactions(out, k)
    pd.testing.assert_frame_equal(again, out)  # idempotent
    # Same rows as a naive one-at-a-time peeling (the k-core is unique, so any order agrees).
    assert set(zip(out["user"], out["item"])) == _naive_kcore(set(zip(raw["user"], raw["item"])), k)


def _naive_kcore(pairs: set, k: int) -> set:
    pairs = set(pairs)
    while True:
        users = pd.Series([u for u, _ in pairs]).value_counts()
        items = pd.Series([i for _, i in pairs]).value_counts()
        weak = next(((u, i) for u, i in pairs if users[u] < k or items[i] < k), None)
        if weak is None:
            return pairs
        pairs.discard(weak)


def test_split_order_ties_and_parts():
    df = pd.DataFrame({"user": ["u"] * 5 + ["short", "short"],
                       "item": ["c", "a", "b", "d", "e", "a", "b"],
                       "timestamp": [20, 10, 10, 30, 10, 1, 2],
                       "rating": np.nan})
    table, users, items = order_and_split(df)
    assert users == {"u": 0}  # the 2-interaction user cannot be split and is dropped
    seq = [k for k, _ in sorted(items.items(), key=lambda kv: kv[1])]
    got = [seq[i - 1] for i in table["item_idx"]]
    assert got == ["a", "b", "e", "c", "d"]  # ties at t=10 keep input order a, b, e
    assert table["part"].tolist() == ["train", "train", "train", "valid", "test"]
    assert table["position"].tolist() == [0, 1, 2, 3, 4]


def test_split_folder_invariants_and_roundtrip(tmp_path):
    raw = filter_interactions(random_interactions(3), 3)
    meta = pd.DataFrame({"item": ["I1", "I2"], "title": ["one", "two"], "description": ["", ""],
                         "categories": ["A > B", ""], "brand": ["x", ""], "image_url": ["u1", ""]})
    table = write_split(tmp_path, raw, meta)
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert items["item_idx"].tolist() == list(range(1, len(items) + 1))
    assert items.loc[items["item"] == "I1", "title"].item() == "one"
    assert (items.loc[~items["item"].isin(["I1", "I2"]), "title"] == "").all()

    data = load_split(tmp_path)
    # The parquet table and the RecBole text files give the same split.
    from_text = load_split_files({p: tmp_path / f"{p}.inter" for p in ("train", "valid", "test")},
                                 _read_mapping(tmp_path))
    assert all(np.array_equal(a, b) for a, b in zip(from_text.train_seqs, data.train_seqs))
    assert np.array_equal(from_text.valid_items, data.valid_items)
    assert np.array_equal(from_text.test_items, data.test_items)
    assert from_text.item_tokens.tolist() == data.item_tokens.tolist()
    assert data.n_items == len(items) + 1 and data.item_tokens[0] == ""
    assert data.n_users == raw["user"].nunique()
    lengths = raw.groupby("user").size()
    for u, user in enumerate(data.user_tokens):
        train = data.train_seqs[u]
        assert len(train) == lengths[user] - 2
        events = set(train) | {data.valid_items[u], data.test_items[u]}
        assert len(events) == lengths[user]  # no item in two parts (no leakage)
        user_times = raw[raw["user"] == user].set_index("item")["timestamp"]
        times = [user_times[data.item_tokens[i]] for i in [*train, data.valid_items[u], data.test_items[u]]]
        assert times == sorted(times)  # chronological
    # Prefix rows: sum over users of (len(train) - 1).
    rows = read_inter(tmp_path / "train.inter")
    assert len(rows.users) == sum(len(s) - 1 for s in data.train_seqs)
    assert (table["part"] == "test").sum() == data.n_users

    stats = compute_stats(tmp_path, {"users": data.n_users, "items": 1, "interactions": len(raw)})
    assert stats["interactions"] == len(raw) and stats["items"] == len(items)
    assert stats["avg_length"] == pytest.approx(len(raw) / data.n_users)
    assert stats["matches_paper"] is False and stats["paper"]["sparsity"] == pytest.approx(1 - len(raw) / data.n_users)


SEQS = {"7": ["3", "10", "1", "4", "2"], "0": ["10", "2", "3", "0", "5", "1"], "12": ["4", "3", "2", "1", "0"]}


def test_load_bare_benchmark_folder(tmp_path):
    write_benchmark_folder(tmp_path, "toy", SEQS)
    data = load_split(tmp_path)
    assert data.user_tokens.tolist() == ["0", "7", "12"]  # numeric order
    assert data.item_tokens.tolist() == ["", "0", "1", "2", "3", "4", "5", "10"]
    tok = {t: i for i, t in enumerate(data.item_tokens)}
    assert data.train_seqs[1].tolist() == [tok["3"], tok["10"], tok["1"]]
    assert data.valid_items[1] == tok["4"] and data.test_items[1] == tok["2"]
    # Without the train file the valid rows give the same split.
    other = write_benchmark_folder(tmp_path / "no_train", "toy", SEQS, with_train=False)
    again = load_split(other)
    assert all(np.array_equal(a, b) for a, b in zip(again.train_seqs, data.train_seqs))


def test_import_benchmark_gives_identical_files(tmp_path):
    src = write_benchmark_folder(tmp_path / "src", "toy", SEQS)
    import_benchmark(src / "toy.train.inter", src / "toy.valid.inter", src / "toy.test.inter", tmp_path / "data")
    for part in ("train", "valid", "test"):
        ours = sorted((tmp_path / "data" / f"{part}.inter").read_text().splitlines())
        theirs = sorted((src / f"toy.{part}.inter").read_text().splitlines())
        assert ours == theirs
    a, b = load_split(src), load_split(tmp_path / "data")
    assert a.item_tokens.tolist() == b.item_tokens.tolist()
    assert np.array_equal(a.test_items, b.test_items)
    inter = pd.read_parquet(tmp_path / "data" / "interactions.parquet")
    assert inter["rating"].isna().all() and len(inter) == sum(map(len, SEQS.values()))


@pytest.mark.parametrize("part,line,bad,message", [
    ("test", 2, "0\t10 2 3 0 9\t1\n", r"toy\.test\.inter:\d+: sequence of user '0'"),
    ("valid", 1, "user\titems\n", r"toy\.valid\.inter:1: header"),
    ("train", 2, "0\t10 2\n", r"toy\.train\.inter:2: expected 3 tab-separated columns"),
    ("train", 2, "0\t10 3\t2\n", r"toy\.train\.inter:2: row of user '0' is not a prefix"),
])
def test_inconsistent_benchmark_files(tmp_path, part, line, bad, message):
    write_benchmark_folder(tmp_path, "toy", SEQS)
    path = tmp_path / f"toy.{part}.inter"
    lines = path.read_text().splitlines(keepends=True)
    if part == "test":  # replace user 0's row wherever it is
        line = next(i for i, l in enumerate(lines, 1) if l.startswith("0\t"))
    lines[line - 1] = bad
    path.write_text("".join(lines))
    with pytest.raises(SplitFormatError, match=message):
        load_split(tmp_path)


def test_missing_train_row_is_detected(tmp_path):
    write_benchmark_folder(tmp_path, "toy", SEQS)
    path = tmp_path / "toy.train.inter"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(SplitFormatError, match=r"training rows, expected"):
        load_split(tmp_path)


def test_parquet_table_is_checked(tmp_path):
    write_split(tmp_path, filter_interactions(random_interactions(4), 3))
    table = pd.read_parquet(tmp_path / "interactions.parquet")
    table.loc[table.index[0], "part"] = "valid"  # a second validation event for user 0
    table.to_parquet(tmp_path / "interactions.parquet", index=False)
    with pytest.raises(SplitFormatError, match=r"interactions\.parquet: user_idx 0 position 0"):
        load_split(tmp_path)
