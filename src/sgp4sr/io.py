"""Small I/O helpers shared by every stage: atomic outputs, logging, seeds.

Every artefact is written through :func:`atomic_path` so that a crash or an
interrupt never leaves a half-written file where Snakemake (or a user) would
take it for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

log = logging.getLogger("sgp4sr")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file lives in the same directory so the final ``os.replace``
    is atomic. On any exception the temporary file is removed and ``target``
    is left untouched. ``suffix`` defaults to the target's own suffix, which
    keeps libraries that dispatch on the extension (numpy, pandas) happy.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else "".join(target.suffixes) + ".tmp",
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_path(path, suffix=".tmp") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` through a temporary file (np.save would append ``.npy`` to a foreign suffix)."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def write_parquet(path: str | os.PathLike, frame: "Any") -> None:
    """Write a pandas DataFrame to parquet atomically, without the index."""
    with atomic_path(path, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_file`` (Snakemake's ``log:``)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) torch from one config value."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency, but keep io importable
        return
    torch.manual_seed(seed)
