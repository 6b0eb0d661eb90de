"""Inputs that leave nothing or cannot be read: empty results fail, unreadable files name file and line."""

from __future__ import annotations

import gzip
import logging
import random

import pandas as pd
import pytest

from data_fixtures import random_interactions, review_2014, write_gz_lines
from sgp4sr.cli.main import main
from sgp4sr.data.kcore import KCoreError, filter_interactions
from sgp4sr.data.parse import ParseError, parse_meta, parse_reviews

PARSERS = {"reviews": parse_reviews, "meta": parse_meta}


def _cli(tmp_path, *argv: str) -> tuple[int, str]:
    """Run ``sgp4sr`` with a log file; return the exit code and the log."""
    log = tmp_path / "cli.log"
    rc = main(["--log", str(log), *argv])
    return rc, log.read_text()


# -- item 4: nothing survives ---------------------------------------------------------------
def test_kcore_leaving_nothing_fails_with_setting_and_passes():
    raw = random_interactions(0)
    with pytest.raises(KCoreError) as err:
        filter_interactions(raw, 1000, setting="datasets.tiny.kcore")
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert message.startswith("datasets.tiny.kcore=1000: the k-core filter left no interactions")
    deduped = raw.drop_duplicates(["user", "item"])
    start = f"{deduped['user'].nunique()}/{deduped['item'].nunique()}/{len(deduped)}"
    assert f"pass 1: {start} -> 0/0/0" in message


def test_kcore_history_lists_every_pass_briefly():
    # A chain: each pass removes one user, which pushes the next one under k.
    rows = [("u0", "a"), ("u0", "b"), ("u1", "b"), ("u1", "c"), ("u2", "c"), ("u2", "d"), ("u3", "d")]
    frame = pd.DataFrame({"user": [u for u, _ in rows], "item": [i for _, i in rows],
                          "timestamp": range(len(rows)), "rating": 1.0})
    with pytest.raises(KCoreError) as err:
        filter_interactions(frame, 2)
    message = str(err.value)
    assert message.startswith("kcore=2:")
    assert "pass 1: 4/4/7 -> " in message and "-> 0/0/0" in message
    assert message.count("pass ") >= 2


def test_kcore_on_empty_input_fails():
    empty = pd.DataFrame({"user": pd.Series(dtype=object), "item": pd.Series(dtype=object),
                          "timestamp": pd.Series(dtype="int64"), "rating": pd.Series(dtype="float32")})
    with pytest.raises(KCoreError, match=r"kcore=5: .*the input has none"):
        filter_interactions(empty, 5)


def test_cli_filter_fails_and_writes_nothing(tmp_path):
    parsed = tmp_path / "parsed.parquet"
    random_interactions(1).to_parquet(parsed, index=False)
    out = tmp_path / "filtered.parquet"
    rc, log = _cli(tmp_path, "prepare", "filter", "--input", str(parsed), "--output", str(out),
                   "--kcore", "1000", "--dataset", "tiny")
    assert rc == 1 and not out.exists()
    assert "KCoreError" in log and "datasets.tiny.kcore=1000" in log and str(parsed) in log
    assert "pass 1:" in log


@pytest.mark.parametrize("content", [b"", gzip.compress(b"\n\n")], ids=["0-bytes", "blank-lines"])
def test_reviews_file_without_reviews_fails(tmp_path, content):
    path = tmp_path / "reviews_X_5.json.gz"
    path.write_bytes(content)
    with pytest.raises(ParseError, match=r"reviews_X_5\.json\.gz: (the file is empty|no reviews read)"):
        parse_reviews(path)


def test_cli_parse_of_empty_reviews_fails_and_writes_nothing(tmp_path):
    reviews = tmp_path / "reviews_X_5.json.gz"
    reviews.write_bytes(b"")
    meta = write_gz_lines(tmp_path / "meta_X.json.gz", [repr({"asin": "B1"})])
    out = tmp_path / "parsed"
    rc, log = _cli(tmp_path, "prepare", "parse", "--reviews", str(reviews), "--meta", str(meta),
                   "--out-dir", str(out))
    assert rc == 1 and not (out / "interactions.parquet").exists()
    assert f"ParseError: {reviews}: the file is empty (0 bytes)" in log


def test_all_malformed_reviews_fail_even_when_skipped(tmp_path):
    path = write_gz_lines(tmp_path / "r.json.gz", ["{oops", "nonsense"])
    with pytest.raises(ParseError, match=r"r\.json\.gz: no reviews read \(2 non-blank line\(s\), 2 skipped"):
        parse_reviews(path, skip_malformed=True)


# -- item 6: unreadable raw files -----------------------------------------------------------
@pytest.mark.parametrize("kind", PARSERS)
def test_zero_byte_file_names_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.json.gz"
    path.write_bytes(b"")
    with pytest.raises(ParseError, match=rf"{kind}\.json\.gz: the file is empty \(0 bytes\)"):
        PARSERS[kind](path, skip_malformed=True)


@pytest.mark.parametrize("kind", PARSERS)
def test_non_gzip_file_named_gz(tmp_path, kind):
    path = tmp_path / f"{kind}.json.gz"
    path.write_text(review_2014("A1", "B1", 1) + "\n")
    with pytest.raises(ParseError, match=rf"{kind}\.json\.gz: is not a gzip file although named \.gz"):
        PARSERS[kind](path, skip_malformed=True)


def _line(i: int, rng: random.Random) -> str:
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(80))  # compresses poorly
    return repr({"reviewerID": f"A{i}", "asin": f"B{i}", "unixReviewTime": i, "title": noise})


@pytest.mark.parametrize("kind", PARSERS)
def test_truncated_gzip_names_file_and_last_line(tmp_path, kind):
    rng = random.Random(0)
    full = write_gz_lines(tmp_path / "full.json.gz", [_line(i, rng) for i in range(3000)])
    path = tmp_path / f"{kind}.json.gz"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ParseError, match=rf"{kind}\.json\.gz: truncated gzip file: .* after line (\d+)") as err:
        PARSERS[kind](path, skip_malformed=True)
    last = int(str(err.value).split("after line ")[1].split()[0])
    assert 0 < last < 3000


def _with_bad_byte(path, lines: list[str], bad_line: int):
    raw = [line.encode("utf-8") for line in lines]
    raw[bad_line - 1] = raw[bad_line - 1].replace(b"fine", b"fi\xffne")
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(raw) + b"\n")
    return path


def _records(kind: str) -> list[str]:
    if kind == "reviews":
        return [review_2014(f"A{i}", f"B{i}", i) for i in range(4)]  # reviewText "it's fine"
    return [repr({"asin": f"B{i}", "title": "fine thing"}) for i in range(4)]


@pytest.mark.parametrize("kind", PARSERS)
def test_non_utf8_byte_names_file_and_line(tmp_path, kind):
    path = _with_bad_byte(tmp_path / f"{kind}.json.gz", _records(kind), 3)
    with pytest.raises(ParseError, match=rf"{kind}\.json\.gz:3: not valid UTF-8 \(byte b'\\xff' at column \d+"):
        PARSERS[kind](path)


@pytest.mark.parametrize("kind", PARSERS)
def test_skip_malformed_skips_and_counts_undecodable_lines(tmp_path, kind, caplog):
    path = _with_bad_byte(tmp_path / f"{kind}.json.gz", [*_records(kind), "{oops"], 2)
    with caplog.at_level(logging.WARNING):
        frame = PARSERS[kind](path, skip_malformed=True)
    assert frame["item"].tolist() == ["B0", "B2", "B3"]
    assert "skipped 2 malformed line(s), 1 of them not valid UTF-8" in caplog.text


def test_undecodable_line_of_an_unreviewed_item_is_passed_over(tmp_path):
    path = _with_bad_byte(tmp_path / "meta.json.gz", _records("meta"), 2)
    assert parse_meta(path, keep_asins={"B0", "B3"})["item"].tolist() == ["B0", "B3"]
    with pytest.raises(ParseError, match=r"meta\.json\.gz:2: not valid UTF-8"):
        parse_meta(path, keep_asins={"B1"})
