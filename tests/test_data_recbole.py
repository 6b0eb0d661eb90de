"""RecBole atomic files (source `recbole`): parsing, file:line errors, rule routing, and the workflow on them."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from sgp4sr.cli.main import main
from sgp4sr.config import ConfigError, validate_config
from sgp4sr.data.kcore import filter_interactions
from sgp4sr.data.parse import ParseError
from sgp4sr.data.recbole import parse_inter, parse_items
from sgp4sr.data.rules import DataRuleError, DataRules
from sgp4sr.data.split import write_split
from workflow_fixtures import copy_workflow, run_snakemake

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tprice:float\tclass:token_seq"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_recbole(folder: Path, name: str = "toy", n_users: int = 8, n_items: int = 6, with_item: bool = True) -> Path:
    """Every user rates every item once, in a user-dependent order, times 10 s apart; items: title, year, genres."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [INTER_HEADER]
    for u in range(1, n_users + 1):
        for j in range(n_items):
            item = (j + u) % n_items + 1 if u % 2 else n_items - j
            rows.append(f"{u}\t{item}\t{1 + (u + j) % 5}\t{1000 + 100 * u + 10 * j}")
    inter = write_lines(folder / f"{name}.inter", rows)
    if with_item:
        write_lines(folder / f"{name}.item", [ITEM_HEADER] + [
            f"{i}\tMovie {i}\t{1990 + i}\t{i}.5\tDrama Comedy" for i in range(1, n_items + 1)])
    return inter


# ---- parsing -------------------------------------------------------------------------------------


def test_inter_columns_types_and_chronological_order(tmp_path):
    path = write_lines(tmp_path / "a.inter", [
        INTER_HEADER,
        "u1\ti1\t5\t100.75",
        "",  # blank lines are skipped (and still counted for line numbers)
        "u1\ti2\t3\t100.25",  # earlier than the row above although both cut to 100 s
        "u2\ti1\t\t7",  # empty rating: unknown
        "u2\ti3\t4.5\t7",  # same time as the row above: file order kept
    ])
    df = parse_inter(path)
    assert list(df.columns) == ["user", "item", "timestamp", "rating"]
    assert df["timestamp"].dtype == np.int64 and df["rating"].dtype == np.float32
    assert list(zip(df["user"], df["item"])) == [("u2", "i1"), ("u2", "i3"), ("u1", "i2"), ("u1", "i1")]
    assert df["timestamp"].tolist() == [7, 7, 100, 100]
    assert np.isnan(df["rating"].iloc[0]) and df["rating"].tolist()[1:] == [4.5, 3.0, 5.0]


def test_inter_without_rating_crlf_and_gzip(tmp_path):
    text = "item_id:token\tuser_id:token\ttimestamp:float\r\nB\tA\t2\r\nC\tA\t1\r\n"
    plain = tmp_path / "a.inter"
    plain.write_bytes(text.encode())
    zipped = tmp_path / "a.inter.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    for path in (plain, zipped):
        df = parse_inter(path)
        assert df["item"].tolist() == ["C", "B"] and df["user"].tolist() == ["A", "A"]
        assert df["rating"].isna().all()


def test_rating_threshold(tmp_path):
    path = write_lines(tmp_path / "a.inter", [INTER_HEADER, "u\ta\t5\t1", "u\tb\t2\t2", "u\tc\t\t3", "u\td\t4\t4"])
    assert parse_inter(path, rating_threshold=4)["item"].tolist() == ["a", "d"]
    bare = write_lines(tmp_path / "b.inter", ["user_id:token\titem_id:token\ttimestamp:float", "u\ta\t1"])
    with pytest.raises(ParseError, match=r"b\.inter:1: rating_threshold 4 needs a 'rating' column"):
        parse_inter(bare, rating_threshold=4)


@pytest.mark.parametrize("lines, message", [
    (["user_id:token\titem_id:token\trating:float", "u\ti\t1"], r"x\.inter:1: no column 'timestamp' in header"),
    ([INTER_HEADER, "u\ti\t1\t5", "", "u\tj\t1\tyesterday"],
     r"x\.inter:4: column 'timestamp': expected a number, got 'yesterday' \(1 such row"),
    ([INTER_HEADER, "u\ti\t1\t5", "u\ti\t1\t"], r"x\.inter:3: column 'timestamp': expected a number, got ''"),
    ([INTER_HEADER, "u\ti\tfive\t5"], r"x\.inter:2: column 'rating': expected a number, got 'five'"),
    ([INTER_HEADER, "u\ti\t1\t5", "", "u\tj\t1\t6\textra"], r"x\.inter:4: expected 4 tab-separated fields .* found 5"),
    ([INTER_HEADER, "u\ti\t1\t5", "u\tj\t6"], r"x\.inter:3: expected 4 tab-separated fields .* found 3"),
    ([INTER_HEADER, "u\ti\t1\t5", "\tj\t1\t6"], r"x\.inter:3: column 'user_id': empty token"),
    (["", INTER_HEADER], r"x\.inter:1: no header line"),
    (["user_id:token\tuser_id:token\titem_id:token\ttimestamp:float"], r"x\.inter:1: repeated field name"),
])
def test_malformed_inter_names_file_line_and_column(tmp_path, lines, message):
    path = write_lines(tmp_path / "x.inter", lines)
    with pytest.raises(ParseError, match=message):
        parse_inter(path)


def test_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.inter: RecBole atomic file not found"):
        parse_inter(tmp_path / "nope.inter")
    path = tmp_path / "x.inter"
    path.write_bytes(f"{INTER_HEADER}\nu\ti\t1\t5\nu\t\xff\xfe\t1\t6\n".encode("latin-1"))
    with pytest.raises(ParseError, match=r"x\.inter:3: not valid UTF-8"):
        parse_inter(path)


def test_items_text_fields(tmp_path, caplog):
    path = write_lines(tmp_path / "a.item", [
        ITEM_HEADER,
        "2\tToy  Story\t1995\t9.5\tAnimation Comedy",
        "1\tHeat\t\t3.0\tAction",
        "2\tduplicate\t2000\t1\tDrama",
    ])
    with caplog.at_level(logging.WARNING):
        items = parse_items(path)  # default: token and token_seq fields, not the float price
    assert "1 repeated item id(s)" in caplog.text
    assert items["item"].tolist() == ["2", "1"]
    assert items["title"].tolist() == ["Toy Story 1995 Animation Comedy", "Heat Action"]
    assert set(items.columns) == {"item", "title", "description", "categories", "brand", "image_url"}
    assert (items["image_url"] == "").all() and (items["description"] == "").all()
    chosen = parse_items(path, ["class", "movie_title"])["title"].tolist()
    assert chosen == ["Animation Comedy Toy Story", "Action Heat"]
    with pytest.raises(ParseError, match=r"a\.item:1: text_fields 'genre' not in header fields"):
        parse_items(path, ["genre"])
    bad = write_lines(tmp_path / "b.item", ["movie_title:token_seq", "Heat"])
    with pytest.raises(ParseError, match=r"b\.item:1: no column 'item_id'"):
        parse_items(bad)


def test_cli_parse_then_filter_and_split_keep_the_text(tmp_path):
    folder = tmp_path / "rb"
    write_recbole(folder, n_users=8, n_items=6)
    parsed = tmp_path / "parsed"
    assert main(["prepare", "parse-recbole", "--inter", str(folder / "toy.inter"), "--item", str(folder / "toy.item"),
                 "--text-fields", "movie_title", "release_year", "--out-dir", str(parsed)]) == 0
    frame = filter_interactions(pd.read_parquet(parsed / "interactions.parquet"), 3)
    table = write_split(tmp_path / "data", frame, pd.read_parquet(parsed / "items.parquet"))
    items = pd.read_parquet(tmp_path / "data" / "items.parquet")
    assert items["item"].tolist() == [str(i) for i in range(1, 7)]
    assert items["title"].tolist() == [f"Movie {i} {1990 + i}" for i in range(1, 7)]
    assert len(table) == 48 and (table.groupby("user_idx")["timestamp"].diff().dropna() > 0).all()
    assert (table.groupby("user_idx")["part"].last() == "test").all()
    # Without an item file the split's text columns are empty.
    out = tmp_path / "p2"
    assert main(["prepare", "parse-recbole", "--inter", str(folder / "toy.inter"), "--out-dir", str(out)]) == 0
    assert pd.read_parquet(out / "items.parquet").empty


# ---- rule routing and config ------------------------------------------------------------------------


def recbole_config(path: str, **extra) -> dict:
    return {"run": {"datasets": ["rb"]},
            "datasets": {"rb": {"source": "recbole", "path": path, "name": "toy", **extra},
                         "bench": {"source": "benchmark", "path": path, "name": "toy"},
                         "demo": {"source": "demo"}}}


def test_rules_route_a_recbole_dataset(tmp_path):
    write_recbole(tmp_path, with_item=False)
    wc = SimpleNamespace(dataset="rb")
    rules = DataRules(recbole_config(str(tmp_path)), "res")
    assert rules.recbole_datasets == "(?:rb)" and rules.parsed_datasets == "(?:rb|demo)"
    assert rules.raw_datasets == "(?:demo)" and rules.benchmark_datasets == "(?:bench)"
    assert rules.recbole_inputs(wc) == {"inter": f"{tmp_path}/toy.inter"}  # no .item file: no item input
    assert rules.recbole_args(wc, SimpleNamespace(inter="x")) == ""
    write_recbole(tmp_path)
    assert rules.recbole_inputs(wc)["item"] == f"{tmp_path}/toy.item"

    spaced = DataRules(recbole_config("/no/such dir", text_fields=["movie_title", "class"], rating_threshold=3.5))
    inputs = spaced.recbole_inputs(wc)  # text_fields ask for the item file: Snakemake reports it missing
    assert inputs == {"inter": "/no/such dir/toy.inter", "item": "/no/such dir/toy.item"}
    assert spaced.recbole_args(wc, SimpleNamespace(**inputs)) == (
        "--item '/no/such dir/toy.item' --text-fields movie_title class --rating-threshold 3.5")


def test_rules_recbole_downloads(tmp_path):
    files = {"inter": {"url": "https://h/d/toy.inter?x=1"}, "item": {"url": "https://h/d/toy.item.gz"}}
    config = recbole_config(str(tmp_path), files=files)
    del config["datasets"]["rb"]["path"]
    rules = DataRules(config, "res")
    assert rules.recbole_inputs(SimpleNamespace(dataset="rb")) == {"inter": "res/downloads/rb/toy.inter",
                                                                  "item": "res/downloads/rb/toy.item.gz"}
    assert rules.download_datasets == "(?:rb)"
    assert rules.download_url(SimpleNamespace(dataset="rb", filename="toy.item.gz")) == "https://h/d/toy.item.gz"
    del config["datasets"]["rb"]["files"]
    with pytest.raises(DataRuleError, match="recbole dataset 'rb' needs `path` or files.inter"):
        rules.recbole_inputs(SimpleNamespace(dataset="rb"))


def test_schema_accepts_recbole_keys_and_requires_a_name():
    validate_config(recbole_config("p", text_fields=["movie_title"], rating_threshold=4, kcore=5))
    config = recbole_config("p", text_fields=[])
    del config["datasets"]["rb"]["name"]
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert "datasets.rb.text_fields" in str(error.value) and "'name' is a required property" in str(error.value)


# ---- the workflow on a recbole dataset with a text modality only ------------------------------------------


@pytest.fixture(scope="module")
def recbole_workflow(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("wf"))
    write_recbole(work / "resources" / "recbole" / "toy", n_users=12, n_items=8)
    (work / "rb.yaml").write_text(yaml.safe_dump({
        "run": {"datasets": ["rb"]},
        "datasets": {"rb": {"source": "recbole", "path": "resources/recbole/toy", "name": "toy", "kcore": 3,
                            "text_fields": ["movie_title", "class"],
                            "modalities": {"text": {"encoder": "sentence"}}, "graphs": {"centres": 2}}},
    }))
    return work


@pytest.mark.workflow
def test_text_only_recbole_dataset_plans_all(recbole_workflow):
    result = run_snakemake(recbole_workflow, "-n", "--cores", "1", "all", "--configfile",
                           str(recbole_workflow / "rb.yaml"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    jobs = {name: int(count) for name, count in (line.split() for line in table.splitlines()[3:] if line.strip())}
    assert jobs["parse_recbole"] == jobs["filter"] == jobs["split"] == 1 and "parse" not in jobs
    assert jobs["features"] == 1 and jobs["modal_graph"] > 0 and jobs["train"] > 0
    assert "feature_noise" not in jobs  # Figure 3 perturbs the image modality, which this dataset lacks
    assert "results/rb/features/text.npy" in result.stdout and "results/rb/features/image" not in result.stdout


@pytest.mark.workflow
def test_recbole_data_stage_runs(recbole_workflow):
    result = run_snakemake(recbole_workflow, "--cores", "1", "results/rb/data/stats.json",
                           "--configfile", str(recbole_workflow / "rb.yaml"), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stats = json.loads((recbole_workflow / "results/rb/data/stats.json").read_text())
    assert stats["users"] == 12 and stats["items"] == 8
    items = pd.read_parquet(recbole_workflow / "results/rb/data/items.parquet")
    assert items["title"].iloc[0] == "Movie 1 Drama Comedy"
    assert (recbole_workflow / "logs/data/rb.parse.log").exists()
