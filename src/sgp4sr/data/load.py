"""Read a split folder into index arrays: the one entry point of every later stage.

Two layouts are accepted:

* our ``results/<ds>/data/`` folder: ``interactions.parquet`` (or, without
  it, ``train.inter``, ``valid.inter``, ``test.inter``) plus ``items.parquet``
  / ``users.parquet`` which fix the token -> index mapping;
* a bare RecBole benchmark folder ``<name>.{train,valid,test}.inter`` (the
  authors' published splits) without mapping files: tokens are indexed by
  :func:`sgp4sr.data.ids.index_tokens`. Its train file may be absent (the
  published Clothing split ships without one): the valid rows hold the whole
  training sequence anyway.

The valid rows are the authority for each user's training sequence; the test
and train rows are checked against them, because a split whose files disagree
would silently leak or drop items.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sgp4sr.data.ids import item_index, token_array, user_index

log = logging.getLogger(__name__)

PARTS = ("train", "valid", "test")
INTER_TYPES = ("token", "token_seq", "token")
INTER_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"


class SplitFormatError(ValueError):
    """A split file is malformed or inconsistent with the other files."""


@dataclass
class SplitData:
    n_items: int  # including padding
    n_users: int
    train_seqs: list[np.ndarray]  # per user, int64 item indices of the training part
    valid_items: np.ndarray  # (n_users,) validation target
    test_items: np.ndarray  # (n_users,) test target
    item_tokens: np.ndarray  # (n_items,) object, token of each index, "" for padding
    user_tokens: np.ndarray  # (n_users,)
    # Interaction times (int64 seconds) aligned with the items, when the data has them
    # (our own splits); None for bare benchmark folders, whose files carry no times.
    train_times: list[np.ndarray] | None = None
    valid_times: np.ndarray | None = None
    test_times: np.ndarray | None = None


@dataclass
class InterRows:
    """Rows of one atomic file, with their 1-based line numbers for error messages."""

    path: Path
    users: list[str]
    seqs: list[list[str]]
    targets: list[str]
    lines: list[int]


def read_inter(path: str | Path) -> InterRows:
    """Parse a RecBole atomic file ``user<TAB>seq<TAB>item`` with a typed header."""
    path = Path(path)
    users: list[str] = []
    seqs: list[list[str]] = []
    targets: list[str] = []
    lines: list[int] = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        types = tuple(h.rsplit(":", 1)[-1] if ":" in h else "" for h in header)
        if types != INTER_TYPES:
            raise SplitFormatError(
                f"{path}:1: header {header!r} is not a sequential atomic header; expected {INTER_HEADER!r}"
            )
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != 3:
                raise SplitFormatError(f"{path}:{lineno}: expected 3 tab-separated columns, found {len(cols)}")
            user, seq, target = cols
            if not user or not target:
                raise SplitFormatError(f"{path}:{lineno}: empty user or item token")
            users.append(user)
            seqs.append(seq.split())
            targets.append(target)
            lines.append(lineno)
    return InterRows(path, users, seqs, targets, lines)


def find_split_files(folder: str | Path, name: str | None = None) -> dict[str, Path | None]:
    """Locate the three atomic files; ``train`` may be None for a bare benchmark folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"split folder {folder} does not exist")
    if name is None and all((folder / f"{p}.inter").exists() for p in PARTS):
        return {p: folder / f"{p}.inter" for p in PARTS}
    if name is None:
        names = sorted({f.name[: -len(".valid.inter")] for f in folder.glob("*.valid.inter")})
        if len(names) != 1:
            raise SplitFormatError(
                f"{folder}: expected train/valid/test.inter or exactly one <name>.valid.inter, found names {names}"
            )
        name = names[0]
    files: dict[str, Path | None] = {p: folder / f"{name}.{p}.inter" for p in PARTS}
    for part in ("valid", "test"):
        if not files[part].exists():  # type: ignore[union-attr]
            raise FileNotFoundError(f"{files[part]} is missing")
    if not files["train"].exists():  # type: ignore[union-attr]
        log.info("%s is absent; training sequences come from the valid rows", files["train"])
        files["train"] = None
    return files


def _read_mapping(folder: Path) -> tuple[dict[str, int], dict[str, int]] | None:
    items_path, users_path = folder / "items.parquet", folder / "users.parquet"
    if not (items_path.exists() and users_path.exists()):
        return None
    items = pd.read_parquet(items_path, columns=["item_idx", "item"])
    users = pd.read_parquet(users_path, columns=["user_idx", "user"])
    if not np.array_equal(np.sort(items["item_idx"].to_numpy()), np.arange(1, len(items) + 1)):
        raise SplitFormatError(f"{items_path}: item_idx must be exactly 1..{len(items)}")
    if not np.array_equal(np.sort(users["user_idx"].to_numpy()), np.arange(len(users))):
        raise SplitFormatError(f"{users_path}: user_idx must be exactly 0..{len(users) - 1}")
    item_map = dict(zip(items["item"].astype(str), items["item_idx"].astype(int)))
    user_map = dict(zip(users["user"].astype(str), users["user_idx"].astype(int)))
    return item_map, user_map


def _one_row_per_user(rows: InterRows) -> dict[str, int]:
    """user -> row position; a user twice in a valid/test file is an error."""
    seen: dict[str, int] = {}
    for i, user in enumerate(rows.users):
        if user in seen:
            raise SplitFormatError(
                f"{rows.path}:{rows.lines[i]}: user {user!r} already has a row at line {rows.lines[seen[user]]}"
            )
        seen[user] = i
    return seen


def _lookup(mapping: dict[str, int], token: str, what: str, rows: InterRows, i: int) -> int:
    try:
        return mapping[token]
    except KeyError:
        raise SplitFormatError(f"{rows.path}:{rows.lines[i]}: unknown {what} token {token!r}") from None


def load_split(folder: str | Path, name: str | None = None) -> SplitData:
    """Read a split folder (ours or a bare benchmark folder) into :class:`SplitData`.

    Our folder is read from ``interactions.parquet`` (columnar, about 20x
    faster than the text files on Baby, and every training run loads it);
    the ``.inter`` files are read when there is no parquet table.
    """
    folder = Path(folder)
    mapping = _read_mapping(folder)
    if name is None and mapping is not None and (folder / "interactions.parquet").exists():
        return _load_parquet(folder / "interactions.parquet", *mapping)
    return load_split_files(find_split_files(folder, name), mapping)


def _load_parquet(path: Path, item_map: dict[str, int], user_map: dict[str, int]) -> SplitData:
    """The split from our interactions table, checked for one valid and one test event per user, last."""
    table = pd.read_parquet(path, columns=["user_idx", "item_idx", "position", "part", "timestamp"])
    table = table.sort_values(["user_idx", "position"], kind="stable")
    users = table["user_idx"].to_numpy()
    n_users, n_items = len(user_map), len(item_map) + 1
    counts = np.bincount(users, minlength=n_users) if len(users) else np.zeros(n_users, dtype=int)
    if len(counts) != n_users or (counts < 2).any():
        raise SplitFormatError(f"{path}: every user of users.parquet needs >= 2 events (user_idx 0..{n_users - 1})")
    items = table["item_idx"].to_numpy().astype(np.int64)
    if items.min() < 1 or items.max() >= n_items:
        raise SplitFormatError(f"{path}: item_idx outside 1..{n_items - 1} (items.parquet)")
    ends = np.cumsum(counts)
    starts = ends - counts
    part = table["part"].to_numpy()
    expected = np.full(len(part), "train", dtype=object)
    expected[ends - 2], expected[ends - 1] = "valid", "test"
    position = table["position"].to_numpy()
    bad = (part != expected) | (position != np.arange(len(position)) - np.repeat(starts, counts))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SplitFormatError(
            f"{path}: user_idx {users[row]} position {position[row]}: parts must be train..., valid, test "
            f"with positions 0..n-1"
        )
    train_seqs = [items[s:e - 2] for s, e in zip(starts.tolist(), ends.tolist())]
    times = table["timestamp"].to_numpy().astype(np.int64)
    log.info("loaded split %s: %d users, %d items (+padding)", path.parent, n_users, n_items - 1)
    return SplitData(
        n_items=n_items,
        n_users=n_users,
        train_seqs=train_seqs,
        valid_items=items[ends - 2],
        test_items=items[ends - 1],
        item_tokens=token_array(item_map, n_items),
        user_tokens=token_array(user_map, n_users),
        train_times=[times[s:e - 2] for s, e in zip(starts.tolist(), ends.tolist())],
        valid_times=times[ends - 2],
        test_times=times[ends - 1],
    )


def load_split_files(
    files: dict[str, Path | None], mapping: tuple[dict[str, int], dict[str, int]] | None = None
) -> SplitData:
    """Read explicit ``train`` (may be None), ``valid``, ``test`` files; index tokens unless ``mapping`` is given."""
    valid, test = read_inter(files["valid"]), read_inter(files["test"])  # type: ignore[arg-type]
    train = read_inter(files["train"]) if files["train"] is not None else None

    v_pos, t_pos = _one_row_per_user(valid), _one_row_per_user(test)
    if set(v_pos) != set(t_pos):
        only = sorted(set(v_pos) ^ set(t_pos))[:5]
        raise SplitFormatError(f"{valid.path} and {test.path} hold different users, e.g. {only}")

    if mapping is None:
        # Valid rows + both targets hold every event; train rows are checked against them below.
        tokens = [t for seq in valid.seqs for t in seq] + valid.targets + test.targets
        item_map, user_map = item_index(tokens), user_index(v_pos)
    else:
        item_map, user_map = mapping
        if len(user_map) != len(v_pos):
            raise SplitFormatError(f"users.parquet lists {len(user_map)} users, {valid.path} {len(v_pos)}")

    n_users, n_items = len(user_map), len(item_map) + 1
    train_seqs: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n_users
    valid_items = np.zeros(n_users, dtype=np.int64)
    test_items = np.zeros(n_users, dtype=np.int64)
    train_tokens: dict[str, list[str]] = {}
    for user, i in v_pos.items():
        u = _lookup(user_map, user, "user", valid, i)
        seq = valid.seqs[i]
        train_tokens[user] = seq
        train_seqs[u] = np.array([_lookup(item_map, t, "item", valid, i) for t in seq], dtype=np.int64)
        valid_items[u] = _lookup(item_map, valid.targets[i], "item", valid, i)
        j = t_pos[user]
        if test.seqs[j] != seq + [valid.targets[i]]:
            raise SplitFormatError(
                f"{test.path}:{test.lines[j]}: sequence of user {user!r} is not its training sequence "
                f"plus validation item ({valid.path}:{valid.lines[i]})"
            )
        test_items[u] = _lookup(item_map, test.targets[j], "item", test, j)
    if train is not None:
        _check_train(train, train_tokens, valid.path)
    log.info("loaded split %s: %d users, %d items (+padding)", valid.path.parent, n_users, n_items - 1)
    return SplitData(
        n_items=n_items,
        n_users=n_users,
        train_seqs=train_seqs,
        valid_items=valid_items,
        test_items=test_items,
        item_tokens=token_array(item_map, n_items),
        user_tokens=token_array(user_map, n_users),
    )


def _check_train(train: InterRows, train_tokens: dict[str, list[str]], valid_path: Path) -> None:
    """Every train row must be a prefix of its user's training sequence, each prefix once."""
    counts: dict[str, int] = {}
    for i, user in enumerate(train.users):
        full = train_tokens.get(user)
        if full is None:
            raise SplitFormatError(f"{train.path}:{train.lines[i]}: user {user!r} has no row in {valid_path}")
        seq = train.seqs[i]
        k = len(seq)
        if k == 0 or k >= len(full) or full[:k] != seq or full[k] != train.targets[i]:
            raise SplitFormatError(
                f"{train.path}:{train.lines[i]}: row of user {user!r} is not a prefix of its training "
                f"sequence and next item as given in {valid_path}"
            )
        counts[user] = counts.get(user, 0) + 1
    for user, full in train_tokens.items():
        expected = max(len(full) - 1, 0)
        if counts.get(user, 0) != expected:
            raise SplitFormatError(
                f"{train.path}: user {user!r} has {counts.get(user, 0)} training rows, expected {expected} "
                f"(one per prefix of its {len(full)}-item training sequence)"
            )


def split_files(folder: str | Path) -> dict[str, Path]:
    """The files :func:`sgp4sr.data.load.load_split` reads in ``folder``, by ``data/<file name>``.

    Our folder: the mapping tables and ``interactions.parquet`` (or, without it, the ``.inter`` files);
    a bare benchmark folder: its ``.inter`` files.
    """
    folder = Path(folder)
    mapping = [folder / "items.parquet", folder / "users.parquet"]
    has_mapping = all(p.is_file() for p in mapping)
    if has_mapping and (folder / "interactions.parquet").is_file():
        read = mapping + [folder / "interactions.parquet"]
    else:
        read = (mapping if has_mapping else []) + [p for p in find_split_files(folder).values() if p is not None]
    return {f"data/{p.name}": p for p in read}
