"""Read RecBole atomic files (``<name>.inter``, optional ``<name>.item``) into the parsed tables.

An atomic file is tab separated with a header of ``name:type`` fields, e.g.
``user_id:token  item_id:token  rating:float  timestamp:float``. The output
is what :mod:`sgp4sr.data.parse` gives for Amazon, so the same filter
(dedup + k-core) and chronological leave-one-out split follow. pandas reads
the values; a vectorised scan of the raw bytes first gives every line's field
count and number, so a bad row is reported as ``<file>:<line>`` (1-based, the
header is line 1) with its column.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from sgp4sr.data.parse import ParseError
from sgp4sr.data.split import META_COLUMNS

log = logging.getLogger(__name__)

USER, ITEM, TIME, RATING = "user_id", "item_id", "timestamp", "rating"
TEXT_TYPES = ("token", "token_seq")  # .item fields used as text when `text_fields` is not given


class Atomic(NamedTuple):
    path: Path
    frame: pd.DataFrame  # every field as str, columns named without their ":type"
    lines: np.ndarray  # 1-based line number of each row
    types: dict[str, str]  # field name -> RecBole type


def read_atomic(path: str | Path, required: Sequence[str] = ()) -> Atomic:
    """Read one atomic file; wrong field counts and missing ``required`` fields raise :class:`ParseError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: RecBole atomic file not found")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ParseError(f"{path}: not a readable gzip file ({exc})") from None
    buf = np.frombuffer(raw, dtype=np.uint8)
    if not len(buf) or buf[0] in (ord("\n"), ord("\r")):
        raise ParseError(f"{path}:1: no header line (expected tab-separated name:type fields)")
    # Byte offsets of every line (end = its newline), blank lines, and the field count of each line.
    ends = np.flatnonzero(buf == ord("\n"))
    if buf[-1] != ord("\n"):
        ends = np.append(ends, len(buf))
    starts = np.r_[0, ends[:-1] + 1]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == ord("\r"))
    blank = ends - starts - has_cr == 0
    tabs = np.flatnonzero(buf == ord("\t"))
    n_fields = np.searchsorted(tabs, ends) - np.searchsorted(tabs, starts) + 1

    header = _decode(raw[starts[0]:ends[0]], path, 1).rstrip("\r").split("\t")
    names = [h.rsplit(":", 1)[0] for h in header]
    types = {n: (h.rsplit(":", 1)[1] if ":" in h else "") for n, h in zip(names, header)}
    if len(set(names)) != len(names):
        raise ParseError(f"{path}:1: repeated field name in header {header}")
    missing = [c for c in required if c not in names]
    if missing:
        raise ParseError(f"{path}:1: no column {', '.join(map(repr, missing))} in header fields {names}")
    wrong = np.flatnonzero((n_fields != len(header)) & ~blank)
    if len(wrong):
        line = int(wrong[0]) + 1
        raise ParseError(f"{path}:{line}: expected {len(header)} tab-separated fields as in the header, "
                         f"found {n_fields[wrong[0]]} ({len(wrong)} such line(s))")
    try:
        frame = pd.read_csv(io.BytesIO(raw), sep="\t", header=0, names=names, dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_NONE, encoding="utf-8")
    except UnicodeDecodeError:
        _decode(raw, path, None, ends)
        raise
    lines = np.flatnonzero(~blank)[1:] + 1  # pandas skips blank lines too
    if len(lines) != len(frame):  # the scan and pandas must agree on the rows, or line numbers lie
        raise ParseError(f"{path}: read {len(frame)} rows but found {len(lines)} non-blank data lines")
    return Atomic(path, frame, lines, types)


def _decode(raw: bytes, path: Path, line: int | None, ends: np.ndarray | None = None) -> str:
    """UTF-8 text of ``raw``; a decode error names the line (found from the byte offset when not given)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = line if line is not None else int(np.searchsorted(ends, exc.start)) + 1
        raise ParseError(f"{path}:{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _fail_first(atomic: Atomic, column: str, bad: np.ndarray, what: str) -> None:
    """Raise naming the first row of ``bad`` (a boolean mask over rows), its line and column."""
    rows = np.flatnonzero(bad)
    if len(rows):
        i = int(rows[0])
        value = atomic.frame[column].iloc[i]
        raise ParseError(f"{atomic.path}:{atomic.lines[i]}: column {column!r}: {what}, got {value!r} "
                         f"({len(rows)} such row(s))")


def _numbers(atomic: Atomic, column: str, *, allow_empty: bool = False) -> np.ndarray:
    text = atomic.frame[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if allow_empty:
        bad &= (text != "").to_numpy()
    _fail_first(atomic, column, bad, "expected a number")
    return values


def _tokens(atomic: Atomic, column: str) -> pd.Series:
    values = atomic.frame[column]
    _fail_first(atomic, column, (values == "").to_numpy(), "empty token")
    return values


def parse_inter(path: str | Path, rating_threshold: float | None = None) -> pd.DataFrame:
    """``user, item`` (str), ``timestamp`` (int64 s), ``rating`` (float32, NaN if absent) of a ``.inter`` file.

    Rows are ordered by their exact (float) time, ties in file order, before
    times are cut to whole seconds, so sub-second order survives the split's
    sort. With ``rating_threshold`` only rows rated at least that are kept.
    """
    atomic = read_atomic(path, required=(USER, ITEM, TIME))
    users, items = _tokens(atomic, USER), _tokens(atomic, ITEM)
    times = _numbers(atomic, TIME)
    has_rating = RATING in atomic.frame
    ratings = _numbers(atomic, RATING, allow_empty=True) if has_rating else np.full(len(times), np.nan)
    frame = pd.DataFrame({
        "user": users.to_numpy(dtype=object),
        "item": items.to_numpy(dtype=object),
        "timestamp": np.floor(times).astype(np.int64),
        "rating": ratings.astype(np.float32),
    }).iloc[np.argsort(times, kind="stable")].reset_index(drop=True)
    if rating_threshold is not None:
        if not has_rating:
            raise ParseError(f"{atomic.path}:1: rating_threshold {rating_threshold} needs a {RATING!r} column")
        kept = frame["rating"] >= rating_threshold
        log.info("%s: kept %d of %d interactions rated >= %g", atomic.path, int(kept.sum()), len(frame),
                 rating_threshold)
        frame = frame[kept].reset_index(drop=True)
    if frame.empty:
        why = f" rated >= {rating_threshold} (rating_threshold)" if rating_threshold is not None else ""
        raise ParseError(f"{atomic.path}: no interactions{why}; every later step would find an empty table")
    log.info("%s: %d interactions", atomic.path, len(frame))
    return frame


def parse_items(path: str | Path, text_fields: Sequence[str] | None = None) -> pd.DataFrame:
    """The parsed item table of a ``.item`` file: ``text_fields`` joined into ``title``, other text columns empty.

    Without ``text_fields``, every ``token``/``token_seq`` field except the
    item id is used, in header order. Repeated item ids: the first row wins.
    """
    atomic = read_atomic(path, required=(ITEM,))
    names = list(atomic.frame.columns)
    if text_fields is None:
        text_fields = [n for n in names if n != ITEM and atomic.types[n] in TEXT_TYPES]
    unknown = [f for f in text_fields if f not in names]
    if unknown:
        raise ParseError(f"{atomic.path}:1: text_fields {', '.join(map(repr, unknown))} not in header fields {names}")
    items = _tokens(atomic, ITEM)
    text = (atomic.frame[list(text_fields)].agg(" ".join, axis=1).str.split().str.join(" ")
            if text_fields else pd.Series("", index=items.index))
    frame = pd.DataFrame({"item": items, **{c: "" for c in META_COLUMNS}})
    frame["title"] = text
    repeated = frame["item"].duplicated()
    if repeated.any():
        log.warning("%s: %d repeated item id(s); the first row of each is kept", atomic.path, int(repeated.sum()))
        frame = frame[~repeated]
    log.info("%s: %d items, text from %s", atomic.path, len(frame), list(text_fields))
    return frame.reset_index(drop=True)


def empty_items() -> pd.DataFrame:
    """The parsed item table of a dataset without a ``.item`` file (the split writes empty text)."""
    return pd.DataFrame({"item": pd.Series(dtype=object), **{c: pd.Series(dtype=object) for c in META_COLUMNS}})
