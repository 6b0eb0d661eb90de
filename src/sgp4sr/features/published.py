"""The visual features published with the 2014 Amazon data (``image_features_<Category>.b``).

The file is a bare sequence of records: a 10-byte ASCII ASIN, then 4096
little-endian float32 (a CNN's fc7 output). Clothing's file is ~60 GB for
~1.5 M products of which the 5-core data keeps ~23 k, so the reader streams
it in chunks and keeps only the wanted rows; it never holds the whole file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
from tqdm.auto import tqdm

from sgp4sr.features.matrix import FeatureFileError

log = logging.getLogger(__name__)

ASIN_BYTES = 10
PUBLISHED_DIM = 4096


def record_dtype(dim: int = PUBLISHED_DIM) -> np.dtype:
    return np.dtype([("asin", f"S{ASIN_BYTES}"), ("vec", "<f4", (dim,))])


def read_published_features(
    path: str | os.PathLike,
    wanted: Mapping[str, int],
    out: np.ndarray,
    *,
    dim: int = PUBLISHED_DIM,
    chunk_records: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """Copy the records whose ASIN is in ``wanted`` (ASIN -> row) into ``out[row]``.

    Returns a boolean mask over the rows of ``out`` marking those found. A
    truncated final record is an error naming the byte offset; an ASIN that
    occurs twice keeps its first record (later copies are counted in the log).
    """
    path = Path(path)
    if out.shape[1] != dim:
        raise ValueError(f"output matrix has dimension {out.shape[1]}, the file holds {dim}")
    dtype = record_dtype(dim)
    size = path.stat().st_size
    if size % dtype.itemsize:
        full = size // dtype.itemsize
        raise FeatureFileError(
            f"{path}: size {size} bytes is not a whole number of {dtype.itemsize}-byte records "
            f"(10-byte ASIN + {dim} float32); the record at byte {full * dtype.itemsize} is truncated"
        )
    keys = {asin.encode("ascii"): row for asin, row in wanted.items() if len(asin) == ASIN_BYTES}
    key_array = np.array(sorted(keys), dtype=f"S{ASIN_BYTES}")
    found = np.zeros(len(out), dtype=bool)
    duplicates = 0
    n_records = size // dtype.itemsize
    with open(path, "rb") as fh, tqdm(total=n_records, unit="rec", desc=path.name, disable=not progress) as bar:
        # One reused buffer: allocating a fresh multi-MB bytes object per read costs more than the I/O.
        buffer = bytearray(chunk_records * dtype.itemsize)
        while True:
            got = fh.readinto(buffer)
            if not got:
                break
            if got % dtype.itemsize:
                raise FeatureFileError(f"{path}: short read at a record boundary (file changed while reading?)")
            records = np.frombuffer(buffer, dtype=dtype, count=got // dtype.itemsize)
            # Vectorised membership first: typically only ~1-2% of a category's records are kept.
            for pos in np.flatnonzero(np.isin(records["asin"], key_array)):
                row = keys[records["asin"][pos]]
                if found[row]:
                    duplicates += 1
                    continue
                out[row] = records["vec"][pos]
                found[row] = True
            bar.update(len(records))
    bad_rows = np.flatnonzero(found & ~np.isfinite(out).all(axis=1))
    if len(bad_rows):
        by_row = {row: asin for asin, row in wanted.items()}
        shown = ", ".join(by_row[r] for r in bad_rows[:5]) + (", ..." if len(bad_rows) > 5 else "")
        raise FeatureFileError(f"{path}: the records of {len(bad_rows)} item(s) contain NaN or inf (ASIN {shown})")
    log.info("%s: %d records, %d of %d wanted items found%s", path.name, n_records, int(found.sum()),
             len(wanted), f", {duplicates} duplicate records ignored" if duplicates else "")
    return found
