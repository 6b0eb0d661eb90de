"""UniSRec's preprocessing of the Amazon 2018 data as per-dataset settings (issue 14, Pantry and Office).

``interactions: ratings`` reads the ratings-only CSV, ``dedup: exact`` merges
only identical rows, ``require_meta: true`` drops items without a metadata
record before the k-core; the defaults leave the data stage as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from data_fixtures import random_interactions, review_2018, write_gz_lines
from sgp4sr.cli.main import main
from sgp4sr.config import ConfigError, validate_config
from sgp4sr.data.kcore import (KCoreError, deduplicate, drop_duplicates_keep_earliest, filter_interactions,
                               kcore)
from sgp4sr.data.load import load_split
from sgp4sr.data.parse import ParseError, parse_ratings
from sgp4sr.data.rules import DataRules
from workflow_fixtures import ROOT, copy_workflow, run_snakemake


def _frame(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame({"user": [r[0] for r in rows], "item": [r[1] for r in rows],
                         "timestamp": pd.Series([r[2] for r in rows], dtype="int64"),
                         "rating": pd.Series([r[3] for r in rows], dtype="float32")})


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# -- dedup: exact --------------------------------------------------------------------------------
def test_exact_dedup_keeps_repeated_pairs_at_other_times():
    frame = _frame([("u", "a", 1, 5.0), ("u", "a", 1, 5.0),  # an identical row: merged
                    ("u", "a", 3, 5.0),                      # the pair again later: kept
                    ("u", "a", 1, 4.0),                      # same time, other rating: a distinct tuple, kept
                    ("v", "a", 1, 5.0)])
    exact = deduplicate(frame, "exact")
    assert exact.index.tolist() == [0, 2, 3, 4]  # the first of identical rows, input order
    assert deduplicate(frame, "pair").index.tolist() == [0, 4]
    with pytest.raises(ValueError, match="dedup must be one of pair, exact"):
        deduplicate(frame, "pairs")


def test_exact_dedup_counts_repeats_in_the_kcore():
    # u has two items, each twice: 4 events, so it survives a 3-core only when repeats count.
    rows = [("u", "a", 1, 5.0), ("u", "a", 2, 5.0), ("u", "b", 3, 5.0), ("u", "b", 4, 5.0)]
    rows += [(f"w{i}", item, 10 + i, 3.0) for i in range(3) for item in ("a", "b", "c")]
    frame = _frame(rows)
    exact = filter_interactions(frame, 3, dedup="exact")
    assert (exact["user"] == "u").sum() == 4
    assert "u" not in set(filter_interactions(frame, 3)["user"])  # pair: u has 2 events


# -- require_meta --------------------------------------------------------------------------------
def _meta_case() -> pd.DataFrame:
    """u keeps 3 events only through item x, which has no metadata; w0..w2 rate a, b, c, x."""
    rows = [("u", "a", 1, 5.0), ("u", "b", 2, 5.0), ("u", "x", 3, 5.0)]
    rows += [(f"w{i}", item, 10 + j, 4.0) for i in range(3) for j, item in enumerate("abcx")]
    return _frame(rows)


def test_require_meta_drops_items_before_the_kcore(caplog):
    frame = _meta_case()
    everything = filter_interactions(frame, 3)
    assert "u" in set(everything["user"]) and "x" in set(everything["item"])  # without the setting
    with caplog.at_level(logging.INFO, logger="sgp4sr.data.kcore"):
        kept = filter_interactions(frame, 3, meta_items={"a", "b", "c"})
    assert "x" not in set(kept["item"])
    assert "u" not in set(kept["user"])  # under 3 events once x is gone: removed by the k-core
    assert set(kept["user"]) == {"w0", "w1", "w2"}
    assert "require_meta dropped 4 interaction(s) of 1 item(s) without a metadata record" in caplog.text


def test_kcore_error_counts_what_require_meta_dropped():
    with pytest.raises(KCoreError) as err:
        filter_interactions(_meta_case(), 3, setting="datasets.pantry.kcore", meta_items={"a"})
    message = str(err.value)
    assert message.startswith("datasets.pantry.kcore=3: the k-core filter left no interactions")
    assert "Before the k-core, require_meta dropped 11 interaction(s) of 3 item(s)" in message


# -- the ratings CSV -----------------------------------------------------------------------------
def test_ratings_csv_parses_in_file_order(tmp_path):
    path = _write_csv(tmp_path / "Prime_Pantry.csv", ["B1,A1,5.0,1400000000", "", "B2,A1,3.0,1300000000",
                                                      "0000031852,A2,1.0,7", "B1,A1,5.0,1400000000"])
    df = parse_ratings(path)
    assert df["item"].tolist() == ["B1", "B2", "0000031852", "B1"]  # repeats kept: dedup is the filter's
    assert df["user"].tolist() == ["A1", "A1", "A2", "A1"]
    assert df["timestamp"].dtype == "int64" and df["timestamp"].tolist() == [1400000000, 1300000000, 7, 1400000000]
    assert df["rating"].dtype == "float32" and df["rating"].tolist() == [5.0, 3.0, 1.0, 5.0]


@pytest.mark.parametrize("bad,why", [
    ("B3,A3,4.0", "expected 4 comma-separated fields"),
    ("B3,A3,4.0,5,extra", "expected 4 comma-separated fields item,user,rating,timestamp, found 5"),
    ("B3,A3,good,5", "rating 'good' is not a number"),
    ("B3,A3,4.0,yesterday", "timestamp 'yesterday' is not an integer"),
    (",A3,4.0,5", "empty item or user"),
    ("item,user,rating,timestamp", "rating 'rating' is not a number"),  # the file has no header
])
def test_bad_ratings_line_names_file_and_line(tmp_path, bad, why):
    path = _write_csv(tmp_path / "Office_Products.csv", ["B1,A1,5.0,1", "B2,A2,4.0,2", bad])
    with pytest.raises(ParseError, match=rf"Office_Products\.csv:3: malformed ratings line \({re.escape(why)}"):
        parse_ratings(path)


def test_ratings_skip_malformed_and_empty_files(tmp_path, caplog):
    path = tmp_path / "r.csv"
    path.write_bytes(b"B1,A1,5.0,1\nB2,A\xff,4.0,2\nnonsense\nB3,A3,2.0,3\n")
    with pytest.raises(ParseError, match=r"r\.csv:2: not valid UTF-8"):
        parse_ratings(path)
    with caplog.at_level(logging.WARNING):
        assert parse_ratings(path, skip_malformed=True)["item"].tolist() == ["B1", "B3"]
    assert "skipped 2 malformed line(s)" in caplog.text
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ParseError, match=r"empty\.csv: the file is empty"):
        parse_ratings(tmp_path / "empty.csv")
    _write_csv(tmp_path / "bad.csv", ["x"])
    with pytest.raises(ParseError, match=r"bad\.csv: no ratings read \(1 non-blank line\(s\), 1 skipped"):
        parse_ratings(tmp_path / "bad.csv", skip_malformed=True)


# -- the stage end to end: CLI, rules, config -----------------------------------------------------
def _cli(tmp_path: Path, *argv: str) -> None:
    assert main(["--log", str(tmp_path / "cli.log"), *argv]) == 0, (tmp_path / "cli.log").read_text()


def test_cli_unisrec_stage(tmp_path):
    """Ratings CSV + metadata -> parse -> filter (exact, require_meta) -> split: a repeat stays, x goes."""
    lines = [f"{item},u,5.0,{t}" for t, item in enumerate(["a", "b", "a", "x", "c"])]
    lines += [f"{item},w{i},4.0,{10 + j}" for i in range(3) for j, item in enumerate("abcx")]
    ratings = _write_csv(tmp_path / "Prime_Pantry.csv", lines + ["a,u,5.0,2"])  # an exact duplicate of u's 2nd a
    meta = write_gz_lines(tmp_path / "meta.json.gz", [json.dumps({"asin": i, "title": ""}) for i in "abc"])
    parsed, filtered, data = tmp_path / "parsed", tmp_path / "filtered.parquet", tmp_path / "data"
    _cli(tmp_path, "prepare", "parse", "--ratings", str(ratings), "--meta", str(meta), "--out-dir", str(parsed))
    _cli(tmp_path, "prepare", "filter", "--input", str(parsed / "interactions.parquet"), "--output", str(filtered),
         "--kcore", "3", "--dedup", "exact", "--require-meta", "--items", str(parsed / "items.parquet"))
    assert "require_meta dropped 4 interaction(s) of 1 item(s)" in (tmp_path / "cli.log").read_text()
    _cli(tmp_path, "prepare", "split", "--interactions", str(filtered), "--items", str(parsed / "items.parquet"),
         "--out-dir", str(data))
    split = load_split(data)
    u = list(split.user_tokens).index("u")
    seq = [split.item_tokens[i] for i in [*split.train_seqs[u], split.valid_items[u], split.test_items[u]]]
    assert seq == ["a", "b", "a", "c"]  # time order; a twice (its exact duplicate merged); x dropped
    assert "x" not in set(split.item_tokens)
    assert main(["--log", str(tmp_path / "e.log"), "prepare", "filter", "--input", str(parsed / "interactions.parquet"),
                 "--output", str(tmp_path / "f2.parquet"), "--require-meta"]) == 1
    assert "--require-meta needs --items" in (tmp_path / "e.log").read_text()


def test_default_settings_leave_the_output_unchanged(tmp_path):
    """No new key: same rule inputs and commands as before, and the filter gives the old step's table."""
    raw = random_interactions(7)
    old = kcore(drop_duplicates_keep_earliest(raw.reset_index(drop=True)), 3).reset_index(drop=True)
    pd.testing.assert_frame_equal(filter_interactions(raw, 3), old)
    parsed = tmp_path / "parsed.parquet"
    raw.to_parquet(parsed, index=False)
    _cli(tmp_path, "prepare", "filter", "--input", str(parsed), "--output", str(tmp_path / "a.parquet"), "--kcore", "3")
    _cli(tmp_path, "prepare", "filter", "--input", str(parsed), "--output", str(tmp_path / "b.parquet"), "--kcore", "3",
         "--dedup", "pair")  # what the filter rule now passes by default
    for name in ("a", "b"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{name}.parquet"), old)

    rules = DataRules({"datasets": {"p": {"source": "amazon2018", "category": "Prime_Pantry"}}}, "res")
    wc = SimpleNamespace(dataset="p")
    assert rules.raw_inputs(wc) == {"reviews": "res/downloads/p/Prime_Pantry_5.json.gz",
                                    "meta": "res/downloads/p/meta_Prime_Pantry.json.gz"}
    assert rules.interactions_arg(wc, SimpleNamespace(reviews="res/x y.gz")) == "--reviews 'res/x y.gz'"
    assert rules.filter_inputs(wc) == {"interactions": "results/p/parsed/interactions.parquet"}
    assert rules.filter_args(wc, SimpleNamespace()) == "--dedup pair"

    # The parse step reads a review file as before.
    reviews = write_gz_lines(tmp_path / "r.json.gz", [review_2018("A1", "B1", 5), review_2018("A1", "B2", 6)])
    meta = write_gz_lines(tmp_path / "m.json.gz", [json.dumps({"asin": "B1"})])
    _cli(tmp_path, "prepare", "parse", "--reviews", str(reviews), "--meta", str(meta), "--out-dir", str(tmp_path / "p"))
    assert pd.read_parquet(tmp_path / "p" / "interactions.parquet")["item"].tolist() == ["B1", "B2"]


def test_rules_and_schema_of_the_unisrec_settings():
    cfg = {"source": "amazon2018", "category": "Office_Products", "interactions": "ratings", "dedup": "exact",
           "require_meta": True}
    rules = DataRules({"datasets": {"o": cfg, "p": {**cfg, "category": "Prime_Pantry", "files": {
        "ratings": {"url": "https://h/amazon_v2/categoryFilesSmall/Prime_Pantry.csv"}}}}}, "res")
    assert rules.raw_inputs(SimpleNamespace(dataset="o")) == {"ratings": "res/downloads/o/Office_Products.csv",
                                                              "meta": "res/downloads/o/meta_Office_Products.json.gz"}
    assert rules.raw_inputs(SimpleNamespace(dataset="p"))["ratings"] == "res/downloads/p/Prime_Pantry.csv"
    wc = SimpleNamespace(dataset="o")
    inputs = rules.filter_inputs(wc)
    assert inputs == {"interactions": "results/o/parsed/interactions.parquet",
                      "item_meta": "results/o/parsed/items.parquet"}
    assert rules.filter_args(wc, SimpleNamespace(**inputs)) == (
        "--dedup exact --require-meta --items results/o/parsed/items.parquet")

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["datasets"]["o"] = cfg
    validate_config(config)
    bad = copy.deepcopy(config)
    bad["datasets"]["o"]["source"] = "amazon2014"  # the 2014 ratings CSVs are laid out otherwise
    with pytest.raises(ConfigError, match=r"datasets\.o\.source: 'amazon2014' is not one of \['amazon2018'\]"):
        validate_config(bad)
    bad = copy.deepcopy(config)
    bad["datasets"]["o"]["dedup"] = "exakt"
    with pytest.raises(ConfigError, match=r"datasets\.o\.dedup: 'exakt' is not one of \['pair', 'exact'\]"):
        validate_config(bad)


def test_paper_config_uses_the_unisrec_settings():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["datasets"]
    for ds in ("pantry", "office"):
        assert (paper[ds]["interactions"], paper[ds]["dedup"], paper[ds]["require_meta"]) == ("ratings", "exact", True)
        assert paper[ds]["files"]["ratings"]["url"].endswith(f"categoryFilesSmall/{paper[ds]['category']}.csv")
    for ds in ("baby", "clothing"):  # the 2014 datasets keep today's processing
        assert not {"interactions", "dedup", "require_meta"} & set(paper[ds])


@pytest.mark.workflow
def test_paper_dry_run_plans_the_unisrec_stage_offline(tmp_path):
    work = copy_workflow(tmp_path)
    result = run_snakemake(work, "-n", "-p", "--cores", "1", "all", "--configfile", "config/paper.yaml", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for ds, category in (("pantry", "Prime_Pantry"), ("office", "Office_Products")):
        assert f"filename={category}.csv" in out and f"{category}_5.json.gz" not in out
        assert f"prepare parse --ratings resources/downloads/{ds}/{category}.csv" in out
        assert (f"--dataset {ds} --dedup exact --require-meta --items results/{ds}/parsed/items.parquet") in out
    for ds in ("baby", "clothing"):
        assert f"prepare parse --reviews resources/downloads/{ds}/reviews_" in out
        assert re.search(rf"--dataset {ds} --dedup pair\s*$", out, re.M)
