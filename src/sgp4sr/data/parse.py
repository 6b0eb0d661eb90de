"""Stream raw Amazon review/metadata files into two flat parquet tables.

The 2014 dumps are Python-literal lines (``{'asin': ...}``, readable with
``ast.literal_eval`` but not ``json``); the 2018 ones are strict JSON with other
field names. Both are read line by line (the metadata files are large) and a
bad line stops the run with its file and line number, unless the config says
``skip_malformed: true``, in which case the count is logged. Lines are read as
bytes and decoded one at a time, so a byte that is not UTF-8 is a malformed
line like any other (file, line and column; skipped and counted with
``skip_malformed``). A file that cannot be read at all - empty (0 bytes), not
gzip although named ``.gz``, or a truncated download - fails naming the file
(and, when truncated, the last line read) whatever ``skip_malformed`` says.

The 2018 release also has a ratings-only file per category,
``categoryFilesSmall/<Category>.csv``: ``item,user,rating,timestamp`` lines
without a header, every rating of the category (not the 5-core). UniSRec reads
it (``datasets.<ds>.interactions: ratings``, :func:`parse_ratings`).
"""

from __future__ import annotations

import ast
import gzip
import json
import logging
import re
import zlib
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")
_ASIN = re.compile(rb"""['"]asin['"]\s*:\s*['"]([^'"]*)['"]""")


class ParseError(ValueError):
    """A raw line cannot be read; the message names the file and line."""


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` of a plain or ``.gz`` file; unreadable files raise :class:`ParseError`.

    Reading stops with the file's name when it is empty, is not gzip data
    although named ``.gz``, or ends inside the compressed stream (a
    truncated download), which also names the last line read.
    """
    if path.stat().st_size == 0:
        raise ParseError(f"{path}: the file is empty (0 bytes); download or generate it again")
    lineno = 0
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            for lineno, line in enumerate(fh, start=1):
                yield lineno, line
    except gzip.BadGzipFile as exc:
        what = "is not a gzip file although named .gz" if lineno == 0 else f"has corrupt gzip data after line {lineno}"
        raise ParseError(f"{path}: {what} ({exc})") from None
    except EOFError:
        raise ParseError(f"{path}: truncated gzip file: the compressed data ends after line {lineno} "
                         "(an incomplete download?)") from None
    except zlib.error as exc:
        raise ParseError(f"{path}: corrupt gzip data after line {lineno} ({exc})") from None


def decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """UTF-8 text of one raw line; a bad byte raises :class:`ParseError` naming file, line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = raw[:120].decode("utf-8", "backslashreplace")
        raise ParseError(f"{path}:{lineno}: not valid UTF-8 (byte {raw[exc.start:exc.start + 1]!r} at column "
                         f"{exc.start + 1}: {exc.reason}): {shown!r}") from None


def _decode(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return ast.literal_eval(line)


def iter_records(
    path: str | Path,
    *,
    skip_malformed: bool = False,
    required: tuple[str, ...] = (),
    keep_asins: Collection[str] | None = None,
    counts: dict[str, int] | None = None,
) -> Iterator[dict]:
    """Yield each line's dict; malformed lines raise :class:`ParseError` or are counted and skipped.

    With ``keep_asins``, lines whose ASIN (found by a cheap regex before the
    costly decode) is not in it are passed over undecoded: the Clothing
    metadata has 1.5M lines of which ~23k items survive the 5-core.
    ``counts``, when given, receives ``lines`` (non-blank), ``skipped`` and
    ``undecodable`` (of the skipped, those not valid UTF-8).
    """
    path = Path(path)

    def keep(raw: bytes) -> bool:
        found = _ASIN.search(raw)
        return not found or found.group(1).decode("utf-8", "replace") in keep_asins

    def record(line: str) -> dict:
        value = _decode(line)
        if not isinstance(value, dict):
            raise ValueError(f"expected a dict, got {type(value).__name__}")
        missing = [k for k in required if value.get(k) in (None, "")]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        return value

    yield from _parsed_lines(path, record, what="line", skip_malformed=skip_malformed,
                             tally=counts if counts is not None else {},
                             prefilter=None if keep_asins is None else keep)


def _parsed_lines(path: Path, parse: Callable[[str], Any], *, what: str, skip_malformed: bool,
                  tally: dict[str, int], prefilter: Callable[[bytes], bool] | None = None) -> Iterator[Any]:
    """``parse`` of every non-blank line that ``prefilter`` (on the raw bytes) keeps.

    A line that is not UTF-8, or that ``parse`` rejects (ValueError, SyntaxError, ...), raises
    :class:`ParseError` with ``file:line``, or with ``skip_malformed`` is counted in ``tally``
    (``lines``, ``skipped``, ``undecodable``) and passed over, with one warning at the end.
    """
    tally.update(lines=0, skipped=0, undecodable=0)
    for lineno, raw in iter_lines(path):
        raw = raw.strip()
        if not raw:
            continue
        tally["lines"] += 1
        if prefilter is not None and not prefilter(raw):
            continue
        try:
            line = decode_line(raw, path, lineno)
        except ParseError:
            if not skip_malformed:
                raise
            tally["skipped"] += 1
            tally["undecodable"] += 1
            continue
        try:
            value = parse(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            if not skip_malformed:
                raise ParseError(f"{path}:{lineno}: malformed {what} ({exc}): {line[:120]!r}") from None
            tally["skipped"] += 1
            continue
        yield value
    if tally["skipped"]:
        log.warning("%s: skipped %d malformed line(s), %d of them not valid UTF-8", path, tally["skipped"],
                    tally["undecodable"])


def _interaction_frame(path: Path, users: list, items: list, times: list, ratings: list, *, what: str,
                       lines: int, skipped: int) -> pd.DataFrame:
    """The parsed table (columns as :func:`parse_reviews`); none read raises :class:`ParseError` naming ``path``."""
    if not users:
        raise ParseError(f"{path}: no {what} read ({lines} non-blank line(s), {skipped} skipped as malformed)")
    frame = pd.DataFrame({
        "user": pd.Series(users, dtype=object),
        "item": pd.Series(items, dtype=object),
        "timestamp": np.asarray(times, dtype=np.int64),
        "rating": np.asarray(ratings, dtype=np.float32),
    })
    log.info("%s: %d %s", path, len(frame), what)
    return frame


def parse_reviews(path: str | Path, *, skip_malformed: bool = False) -> pd.DataFrame:
    """Interactions in file order: ``user, item`` (str), ``timestamp`` (int64), ``rating`` (float32, NaN if absent).

    A file that yields no review at all raises :class:`ParseError` naming it:
    every later step would only find an empty table.
    """
    path = Path(path)
    users, items, times, ratings = [], [], [], []
    counts: dict[str, int] = {}
    bad_values = 0
    for rec in iter_records(path, skip_malformed=skip_malformed, required=REVIEW_KEYS, counts=counts):
        try:
            ts = int(rec["unixReviewTime"])
            rating = float(rec["overall"]) if rec.get("overall") is not None else np.nan
        except (TypeError, ValueError) as exc:
            if not skip_malformed:
                raise ParseError(f"{path}: review of {rec.get('reviewerID')!r} on {rec.get('asin')!r}: {exc}") from None
            bad_values += 1
            continue
        users.append(str(rec["reviewerID"]))
        items.append(str(rec["asin"]))
        times.append(ts)
        ratings.append(rating)
    if bad_values:
        log.warning("%s: skipped %d review(s) with a non-numeric time or rating", path, bad_values)
    return _interaction_frame(path, users, items, times, ratings, what="reviews", lines=counts["lines"],
                              skipped=counts["skipped"] + bad_values)


RATINGS_FIELDS = ("item", "user", "rating", "timestamp")


def _rating_fields(line: str) -> tuple[str, str, float, int]:
    """``item, user, rating, timestamp`` of one ratings-CSV line; ValueError says what is wrong."""
    fields = line.split(",")
    if len(fields) != len(RATINGS_FIELDS):
        raise ValueError(f"expected {len(RATINGS_FIELDS)} comma-separated fields {','.join(RATINGS_FIELDS)}, "
                         f"found {len(fields)}")
    item, user, rating, timestamp = (f.strip() for f in fields)
    if not item or not user:
        raise ValueError("empty item or user")
    try:
        value = float(rating)
    except ValueError:
        raise ValueError(f"rating {rating!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"rating {rating!r} is not finite")
    try:
        return item, user, value, int(timestamp)
    except ValueError:
        raise ValueError(f"timestamp {timestamp!r} is not an integer") from None


def parse_ratings(path: str | Path, *, skip_malformed: bool = False) -> pd.DataFrame:
    """The 2018 ratings-only CSV (``item,user,rating,timestamp``, no header) as :func:`parse_reviews`' table.

    Rows stay in file order and every row is kept (repeats too: deduplication
    is the filter step's). A line that does not hold the four fields, or whose
    rating is not a number or timestamp not an integer, raises
    :class:`ParseError` with ``file:line``, or is skipped and counted with
    ``skip_malformed`` (UniSRec prints and skips such lines).
    """
    path = Path(path)
    counts: dict[str, int] = {}
    rows = list(_parsed_lines(path, _rating_fields, what="ratings line", skip_malformed=skip_malformed,
                              tally=counts))
    items, users, ratings, times = (list(column) for column in zip(*rows)) if rows else ([], [], [], [])
    return _interaction_frame(path, users, items, times, ratings, what="ratings", lines=counts["lines"],
                              skipped=counts["skipped"])


def _text(value: Any) -> str:
    """2018 descriptions are lists of paragraphs; 2014 ones are strings."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v).strip() for v in value if v)
    return str(value).strip()


def _categories(rec: dict) -> str:
    """" > " between levels, "; " between paths; 2014 ``categories`` (list of lists) or 2018 ``category`` (one path)."""
    paths = rec.get("categories")
    if paths:
        if isinstance(paths, list) and all(isinstance(p, list) for p in paths):
            return "; ".join(" > ".join(str(c) for c in p) for p in paths if p)
        if isinstance(paths, list):
            return " > ".join(str(c) for c in paths)
    path = rec.get("category")
    if isinstance(path, list):
        return " > ".join(str(c) for c in path)
    return str(path) if path else ""


def _image_url(rec: dict) -> str:
    for key in ("imUrl", "imageURLHighRes", "imageURL"):
        value = rec.get(key)
        if isinstance(value, list):
            value = next((v for v in value if v), None)
        if value:
            return str(value)
    return ""


def parse_meta(
    path: str | Path, *, skip_malformed: bool = False, keep_asins: Collection[str] | None = None
) -> pd.DataFrame:
    """One row per item (first occurrence wins: the 2018 metadata repeats some); optionally only ``keep_asins``."""
    rows: dict[str, tuple[str, str, str, str, str]] = {}
    for rec in iter_records(path, skip_malformed=skip_malformed, required=("asin",), keep_asins=keep_asins):
        asin = str(rec["asin"])
        if asin in rows:
            continue
        rows[asin] = (_text(rec.get("title")), _text(rec.get("description")), _categories(rec),
                      _text(rec.get("brand")), _image_url(rec))
    frame = pd.DataFrame.from_records(
        [(k, *v) for k, v in rows.items()],
        columns=["item", "title", "description", "categories", "brand", "image_url"],
    )
    log.info("%s: %d items", path, len(frame))
    return frame
