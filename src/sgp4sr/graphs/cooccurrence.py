"""Item co-occurrence matrix ``W`` (spec §1) from the training parts of the sequences.

The authors fill a dense ``n x n`` array with a Python loop over every pair of
positions of every sequence. Here all pairs at the same distance ``d = j - k``
are taken at once with numpy (sequences sorted by length, so the ones long
enough for ``d`` form a prefix of one flat array) and summed by scipy's
sparse conversion: the work is the number of pairs, the memory the number of
distinct co-occurring item pairs.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from sgp4sr.io import atomic_path

log = logging.getLogger(__name__)

# Pairs buffered before they are folded into the running sparse sum.
_FLUSH_PAIRS = 1 << 23


def _check_sequences(train_seqs: Sequence[np.ndarray], n_items: int) -> list[np.ndarray]:
    """Integer arrays with every item in 1..n_items-1; name the user of the first bad item."""
    seqs = []
    for user, seq in enumerate(train_seqs):
        arr = np.asarray(seq)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"training sequence of user {user} is not a 1-D integer array (dtype {arr.dtype})")
        bad = (arr < 1) | (arr >= n_items)
        if bad.any():
            raise ValueError(
                f"training sequence of user {user} holds item index {int(arr[bad][0])}, "
                f"outside 1..{n_items - 1} (0 is padding)"
            )
        seqs.append(arr.astype(np.int64, copy=False))
    return seqs


def raw_cooccurrence(train_seqs: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Unnormalised, symmetric ``W`` (float64): ``1/(j-k)`` for each pair ``k < j`` of each sequence.

    A repeated item (``s_k == s_j``) adds ``2/(j-k)`` to its diagonal entry,
    as the spec adds the weight to ``W[s_k, s_j]`` and to ``W[s_j, s_k]``.
    """
    seqs = _check_sequences(train_seqs, n_items)
    shape = (n_items, n_items)
    upper = sp.csr_matrix(shape, dtype=np.float64)
    if not seqs:
        return upper
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    lengths = lengths[order]
    flat = np.concatenate([seqs[u] for u in order]) if lengths.sum() else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    seq_len = np.repeat(lengths, lengths)  # length of the sequence each position belongs to
    pos = np.arange(flat.size) - np.repeat(starts, lengths)  # position within its sequence
    prefix_end = np.cumsum(lengths)  # flat end of the first u+1 (longest) sequences

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    buffered = 0

    def flush() -> None:
        nonlocal upper, buffered
        if buffered:
            r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
            upper = upper + sp.csr_matrix((v, (r, c)), shape=shape)
            rows.clear(), cols.clear(), vals.clear()
            buffered = 0

    max_len = int(lengths[0])
    for d in range(1, max_len):
        n_long = int(np.searchsorted(-lengths, -d, side="left"))  # sequences with length > d
        end = int(prefix_end[n_long - 1])
        first = np.flatnonzero(pos[:end] + d < seq_len[:end])
        rows.append(flat[first])
        cols.append(flat[first + d])
        vals.append(np.full(first.size, 1.0 / d))
        buffered += first.size
        if buffered >= _FLUSH_PAIRS:
            flush()
    flush()
    full = (upper + upper.T).tocsr()
    full.sum_duplicates()
    full.sort_indices()
    return full


def normalise_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row to unit L2 norm; all-zero rows stay zero."""
    matrix = matrix.tocsr(copy=True)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    matrix.data *= np.repeat(scale, np.diff(matrix.indptr))
    return matrix


def build_cooccurrence(train_seqs: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Spec §1 ``W``: distance-weighted, symmetric, rows L2-normalised, CSR float32.

    Summation and normalisation run in float64; the stored (and ranked)
    values are float32, the precision the model uses, so sums that are equal
    in exact arithmetic but differ in the last float64 bits still tie.
    """
    raw = raw_cooccurrence(train_seqs, n_items)
    w = normalise_rows(raw).astype(np.float32)
    w.eliminate_zeros()
    w.sort_indices()
    log.info("co-occurrence: %d items, %d non-zeros, %d items without co-occurrence",
             n_items - 1, w.nnz, items_without_cooccurrence(w))
    return w


def cooccurrence_from_split(folder: str | os.PathLike) -> sp.csr_matrix:
    """``W`` of a split folder, from ``SplitData.train_seqs`` only (never valid/test targets)."""
    from sgp4sr.data.load import load_split

    split = load_split(folder)
    return build_cooccurrence(split.train_seqs, split.n_items)


def items_without_cooccurrence(w: sp.csr_matrix) -> int:
    """Real items (index >= 1) whose row of ``W`` is empty."""
    return int((np.diff(w.indptr)[1:] == 0).sum())


def save_sparse(path: str | os.PathLike, matrix: sp.spmatrix) -> None:
    """``scipy.sparse.save_npz`` through a temporary file (CSR, compressed)."""
    with atomic_path(path, suffix=".npz") as tmp:
        sp.save_npz(tmp, matrix.tocsr(), compressed=True)


def load_graph(path: str | os.PathLike, n_items: int | None = None) -> sp.csr_matrix:
    """Load ``cooccurrence.npz`` or a modal graph as square CSR; check the shape against ``n_items``."""
    matrix = sp.load_npz(path).tocsr()
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{path}: graph must be square, found shape {matrix.shape}")
    if n_items is not None and matrix.shape[0] != n_items:
        raise ValueError(f"{path}: graph has {matrix.shape[0]} rows, expected n_items={n_items}")
    return matrix
