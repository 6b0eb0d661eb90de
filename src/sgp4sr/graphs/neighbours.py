"""Modal neighbour sets guided by co-occurrence, and the modal graph ``A_m`` (spec §1).

Exactness rules (the dense reference in the tests follows the same ones):

* cosine similarity of feature rows; padding (index 0) is never a neighbour;
* a feature row that is all zero has no direction: its similarity is ``0``
  to every item (itself included), so it ranks after every positive and
  before every negative similarity, and a zero-row item's own ``N_m`` is
  ``1..H_m`` (all ties, index order);
* ties are broken by item index (smaller first); items with identical
  feature rows tie exactly, because their similarity columns are copied
  from the first item of the group instead of trusting BLAS to round two
  columns alike;
* ``N_o(i)`` ranks the stored float32 row of ``W`` (non-zero entries only),
  ties by index; an item without co-occurrence has an empty ``N_o``;
* ``N = (N_m ∩ N_o in similarity order) + (rest of N_m in similarity order)``,
  first ``H``.

Similarities are computed chunk by chunk of query items (``chunk x n`` at a
time, never ``n x n``) with a float32 matmul and ``topk``; only rows whose
``H_m``-th value is tied with further items take the slower exact path.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

log = logging.getLogger(__name__)

# Products such as 100 * 0.29 land just below an integer in floating point.
_FLOOR_EPS = 1e-9


def neighbour_sizes(H: int, mu_m: float, mu_o: float) -> tuple[int, int]:
    """``(H_m, H_o) = (floor(H * mu_m + eps), floor(H * mu_o + eps))``, checked against ``H``."""
    if H < 1:
        raise ValueError(f"H must be >= 1, got {H}")
    if mu_m < 1 or mu_o < 0:
        raise ValueError(f"need mu_m >= 1 and mu_o >= 0, got mu_m={mu_m}, mu_o={mu_o}")
    h_m = int(math.floor(H * mu_m + _FLOOR_EPS))
    h_o = int(math.floor(H * mu_o + _FLOOR_EPS))
    return max(h_m, H), h_o


def load_features(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """One feature matrix (float32), or for several paths the ``fused`` modality.

    ``fused`` (the ``w/o MUL`` ablation) is the concatenation of the
    row-L2-normalised matrices, so no modality dominates by its scale or width.
    """
    mats = []
    for path in paths:
        mat = np.load(path, allow_pickle=False)
        if mat.ndim != 2:
            raise ValueError(f"{path}: features must be 2-D (n_items, d), found shape {mat.shape}")
        bad = ~np.isfinite(mat)
        if bad.any():
            row = int(np.argwhere(bad)[0, 0])
            raise ValueError(f"{path}: non-finite value in feature row {row}")
        mats.append(np.asarray(mat, dtype=np.float32))
    if not mats:
        raise ValueError("no feature files given")
    rows = {m.shape[0] for m in mats}
    if len(rows) != 1:
        raise ValueError(f"feature files disagree on n_items: {[m.shape[0] for m in mats]} rows in {list(paths)}")
    if len(mats) == 1:
        return mats[0]
    return np.concatenate([normalise_features(m) for m in mats], axis=1)


def normalise_features(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); zero rows stay zero."""
    feats = np.asarray(features, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", feats, feats, dtype=np.float64))[:, None]
    out = np.zeros(feats.shape, dtype=np.float32)
    np.divide(feats, norms, out=out, where=norms > 0, casting="unsafe")
    return out


def duplicate_representatives(features: np.ndarray) -> np.ndarray:
    """For every row, the smallest index of a row with exactly the same values."""
    feats = np.ascontiguousarray(features)
    rows = feats.view(np.dtype((np.void, feats.dtype.itemsize * feats.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return first[inverse.ravel()]


def real_representatives(unit: np.ndarray) -> np.ndarray:
    """:func:`duplicate_representatives` over the real items; padding maps to itself only."""
    return np.concatenate([[0], 1 + duplicate_representatives(unit[1:])]).astype(np.int64)


def _chunk_rows(n_items: int, chunk_mb: float) -> int:
    return max(1, min(n_items, int(chunk_mb * 2**20 / (4 * max(n_items, 1)))))


def top_cosine(features: np.ndarray, h_m: int, chunk_mb: float = 64.0) -> np.ndarray:
    """``N_m``: ``(n_items, h_m)`` int64, each row in descending similarity, ties by index.

    Row 0 (padding) is all ``-1``. ``h_m`` is capped by the number of real items.
    """
    n_items = features.shape[0]
    n_real = n_items - 1
    if n_real < 1:
        raise ValueError("no real items (features have only the padding row)")
    h_m = min(h_m, n_real)
    unit = normalise_features(features)
    unit[0] = 0.0
    rep = real_representatives(unit)
    dup_cols = np.flatnonzero(rep != np.arange(n_items))
    dup_cols = dup_cols[dup_cols > 0]
    dup_src = torch.from_numpy(rep[dup_cols])
    dup_cols_t = torch.from_numpy(dup_cols)
    zero_row = ~unit.any(axis=1)
    keys = torch.from_numpy(unit)
    out = np.full((n_items, h_m), -1, dtype=np.int64)
    step = _chunk_rows(n_items, chunk_mb)
    for start in range(1, n_items, step):
        stop = min(start + step, n_items)
        # Query through the representative so duplicated items get identical rows too.
        queries = keys[torch.from_numpy(rep[start:stop])]
        sims = queries @ keys.T
        sims[:, 0] = -math.inf
        if dup_cols.size:
            sims[:, dup_cols_t] = sims[:, dup_src]
        out[start:stop] = _top_rows(sims, h_m, zero_row[start:stop])
    return out


def _top_rows(sims: torch.Tensor, h_m: int, zero_query: np.ndarray) -> np.ndarray:
    """Exact top-``h_m`` of each row of ``sims`` by (value desc, column asc)."""
    # One extra value tells whether more than h_m items reach the h_m-th value (a tie at the
    # boundary); column 0 is -inf, so the extra slot always exists and never ties.
    vals, idx = torch.topk(sims, h_m + 1, dim=1, largest=True, sorted=True)
    kth = vals[:, h_m - 1 : h_m]
    tied = (vals[:, h_m] == vals[:, h_m - 1]).numpy() & ~zero_query
    vals_np, idx_np = vals[:, :h_m].numpy(), idx[:, :h_m].numpy()
    # Inside the selected set, order by value then index (topk's order among equals is unspecified).
    order = np.lexsort((idx_np, -vals_np), axis=1)
    result = np.take_along_axis(idx_np, order, axis=1)
    # A zero query has similarity 0 to everything: neighbours are items 1..h_m.
    result[zero_query] = np.arange(1, h_m + 1)
    for r in np.flatnonzero(tied):
        row = sims[r].numpy()
        cand = np.flatnonzero(row >= kth[r, 0].item())
        cand = cand[np.lexsort((cand, -row[cand]))]
        result[r] = cand[:h_m]
    return result


def top_cooccurrence(w: sp.csr_matrix, h_o: int) -> sp.csr_matrix:
    """``N_o`` as a boolean CSR: per row the ``h_o`` largest non-zeros of ``W``, ties by index."""
    w = w.tocsr()
    n = w.shape[0]
    if h_o <= 0 or w.nnz == 0:
        return sp.csr_matrix((n, n), dtype=bool)
    counts = np.diff(w.indptr)
    row_of = np.repeat(np.arange(n), counts)
    data = w.data.astype(np.float32)
    order = np.lexsort((w.indices, -data, row_of))
    rank = np.arange(w.nnz) - np.repeat(w.indptr[:-1], counts)
    keep = order[rank < h_o]  # rank is per position in the sorted order: same row layout
    rows, cols = row_of[keep], w.indices[keep]
    keep_nz = data[keep] != 0
    rows, cols = rows[keep_nz], cols[keep_nz]
    return sp.csr_matrix((np.ones(rows.size, bool), (rows, cols)), shape=(n, n))


def combine(n_m: np.ndarray, n_o: sp.csr_matrix, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Final neighbours ``(n_items, H)`` (intersection first) and ``|N_m ∩ N_o|`` per item."""
    n_items, h_m = n_m.shape
    if H > h_m:
        raise ValueError(f"H={H} exceeds the {h_m} available neighbours (number of real items)")
    rows = np.repeat(np.arange(n_items), h_m)
    cols = n_m.ravel()
    valid = cols >= 0
    # Membership of (i, j) in N_o by searching sorted int64 keys i * n + j.
    o = n_o.tocoo()
    o_keys = np.sort(o.row.astype(np.int64) * n_items + o.col)
    keys = rows * n_items + cols
    if o_keys.size:
        pos = np.minimum(np.searchsorted(o_keys, keys), o_keys.size - 1)
        in_o = valid & (o_keys[pos] == keys)
    else:
        in_o = np.zeros(keys.size, dtype=bool)
    in_o = in_o.reshape(n_items, h_m)
    order = np.argsort(~in_o, axis=1, kind="stable")
    final = np.take_along_axis(n_m, order, axis=1)[:, :H]
    return final, in_o.sum(axis=1)


def graph_from_neighbours(neighbours: np.ndarray, H: int) -> sp.csr_matrix:
    """``A_m``: ``1/H`` at each neighbour; rows with index ``-1`` (padding) stay empty."""
    n_items = neighbours.shape[0]
    rows = np.repeat(np.arange(n_items), neighbours.shape[1])
    cols = neighbours.ravel()
    keep = cols >= 0
    graph = sp.csr_matrix(
        (np.full(int(keep.sum()), 1.0 / H, dtype=np.float32), (rows[keep], cols[keep])),
        shape=(n_items, n_items),
    )
    graph.sort_indices()
    return graph


@dataclass
class ModalGraph:
    graph: sp.csr_matrix
    neighbours: np.ndarray  # (n_items, H), row 0 = -1
    stats: dict


def build_modal_graph(
    features: np.ndarray,
    w: sp.csr_matrix,
    H: int,
    mu_m: float,
    mu_o: float,
    chunk_mb: float = 64.0,
) -> ModalGraph:
    """Spec §1 neighbour selection and ``A_m`` for one modality (``mu_o = 0``: plain top-``H``)."""
    n_items = features.shape[0]
    if w.shape != (n_items, n_items):
        raise ValueError(f"co-occurrence shape {w.shape} does not match {n_items} feature rows")
    h_m, h_o = neighbour_sizes(H, mu_m, mu_o)
    n_m = top_cosine(features, h_m, chunk_mb=chunk_mb)
    n_o = top_cooccurrence(w, h_o)
    final, inter = combine(n_m, n_o, H)
    final[0] = -1
    zero_rows = int((~features[1:].any(axis=1)).sum())
    dup = real_representatives(normalise_features(features))[1:] != np.arange(1, n_items)
    stats = {
        "n_items": int(n_items),
        "H": int(H), "H_m": int(min(h_m, n_items - 1)), "H_o": int(h_o),
        "mu_m": float(mu_m), "mu_o": float(mu_o),
        "mean_intersection": float(inter[1:].mean()) if n_items > 1 else 0.0,
        "items_without_cooccurrence": int((np.diff(w.indptr)[1:] == 0).sum()),
        "zero_feature_items": zero_rows,
        "duplicate_feature_items": int(dup.sum()),
    }
    return ModalGraph(graph_from_neighbours(final, H), final, stats)
