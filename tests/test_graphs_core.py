"""Spec §1 graphs against a brute-force dense reference written straight from the spec."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from sgp4sr.graphs.centres import build_centres, membership_matrix
from sgp4sr.graphs.cooccurrence import build_cooccurrence, raw_cooccurrence
from sgp4sr.graphs.neighbours import (
    build_modal_graph,
    load_features,
    neighbour_sizes,
    normalise_features,
    top_cosine,
)

N_ITEMS = 61  # including padding
SETTINGS = [(10, 2.5, 0.3), (5, 2.0, 1.0), (4, 1.0, 0.0), (3, 3.4, 2.0), (6, 1.5, 0.5), (1, 1.0, 3.0)]


# ---------------------------------------------------------------- reference
def ref_cooccurrence(seqs: list[np.ndarray], n: int) -> np.ndarray:
    """Dense W: 1/(j-k) to both [s_k, s_j] and [s_j, s_k], rows scaled to unit norm (float32)."""
    w = np.zeros((n, n))
    for s in seqs:
        for j in range(len(s)):
            for k in range(j):
                w[s[k], s[j]] += 1.0 / (j - k)
                w[s[j], s[k]] += 1.0 / (j - k)
    for i in range(n):
        norm = math.sqrt(sum(x * x for x in w[i]))
        if norm > 0:
            w[i] /= norm
    return w.astype(np.float32)


def ref_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = math.sqrt(math.fsum(a * a)), math.sqrt(math.fsum(b * b))
    if na == 0 or nb == 0:
        return 0.0  # documented choice: a zero row has similarity 0 to everything
    return math.fsum(a.astype(np.float64) * b) / (na * nb)


def ref_neighbours(feats: np.ndarray, w: np.ndarray, H: int, mu_m: float, mu_o: float) -> list[list[int]]:
    n = feats.shape[0]
    h_m = min(math.floor(H * mu_m + 1e-9), n - 1)
    h_o = math.floor(H * mu_o + 1e-9)
    out = [[]]
    for i in range(1, n):
        sims = [(ref_cosine(feats[i], feats[j]), j) for j in range(1, n)]
        n_m = [j for _, j in sorted(sims, key=lambda t: (-t[0], t[1]))[:h_m]]
        co = [(w[i, j], j) for j in range(n) if w[i, j] != 0]
        n_o = {j for _, j in sorted(co, key=lambda t: (-t[0], t[1]))[:h_o]}
        ordered = [j for j in n_m if j in n_o] + [j for j in n_m if j not in n_o]
        out.append(ordered[:H])
    return out


# ---------------------------------------------------------------- data
@pytest.fixture(scope="module")
def data() -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(7)
    # Items 50..60 never occur in training: empty co-occurrence rows.
    seqs = [rng.integers(1, 50, size=rng.integers(1, 9)) for _ in range(40)]
    seqs.append(np.array([3, 3, 4, 3]))  # repeats: diagonal entries
    seqs.append(np.array([], dtype=np.int64))
    feats = rng.normal(size=(N_ITEMS, 6)).astype(np.float32)
    feats[0] = 0
    feats[[4, 17, 55]] = 0  # zero rows, one of them without co-occurrence
    feats[9] = feats[2]  # duplicated rows, including the first item
    feats[30] = feats[2]
    feats[58] = feats[21]
    return seqs, feats


def neighbour_lists(graph: sp.csr_matrix) -> list[set[int]]:
    return [set(graph.indices[graph.indptr[i]:graph.indptr[i + 1]].tolist()) for i in range(graph.shape[0])]


# ---------------------------------------------------------------- tests
def test_cooccurrence_matches_reference(data):
    seqs, _ = data
    w = build_cooccurrence(seqs, N_ITEMS)
    ref = ref_cooccurrence(seqs, N_ITEMS)
    assert sp.isspmatrix_csr(w) and w.dtype == np.float32
    np.testing.assert_allclose(w.toarray(), ref, rtol=1e-6, atol=1e-7)
    raw = raw_cooccurrence(seqs, N_ITEMS)  # symmetric before the row scaling
    assert abs(raw - raw.T).max() == 0
    assert raw[3, 3] == pytest.approx(2 * (1 + 1 / 3 + 1 / 2))  # repeats at distances 1, 3, 2
    assert np.array_equal(w.toarray() != 0, (w.toarray() != 0).T)
    norms = np.sqrt(np.asarray(w.multiply(w).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)
    assert w[0].nnz == 0 and all(w[i].nnz == 0 for i in range(50, N_ITEMS))


def test_cooccurrence_rejects_padding_and_out_of_range():
    with pytest.raises(ValueError, match="user 1 .* index 0"):
        build_cooccurrence([np.array([1, 2]), np.array([3, 0])], 5)
    with pytest.raises(ValueError, match="index 5"):
        build_cooccurrence([np.array([5])], 5)


@pytest.mark.parametrize("H,mu_m,mu_o", SETTINGS)
def test_modal_graph_matches_reference(data, H, mu_m, mu_o):
    seqs, feats = data
    w = build_cooccurrence(seqs, N_ITEMS)
    result = build_modal_graph(feats, w, H, mu_m, mu_o, chunk_mb=0.001)  # a few rows per chunk
    expected = ref_neighbours(feats, w.toarray(), H, mu_m, mu_o)
    for i in range(1, N_ITEMS):
        assert result.neighbours[i].tolist() == expected[i], f"item {i}"
    assert (result.neighbours[0] == -1).all()
    graph = result.graph
    assert graph[0].nnz == 0
    assert neighbour_lists(graph)[1:] == [set(e) for e in expected[1:]]
    np.testing.assert_allclose(graph.data, 1.0 / H)
    np.testing.assert_allclose(np.asarray(graph.sum(axis=1)).ravel()[1:], 1.0, rtol=1e-6)
    assert graph[:, 0].nnz == 0  # padding never a neighbour


def test_zero_and_duplicate_rows_follow_the_documented_rules(data):
    _, feats = data
    n_m = top_cosine(feats, 8)
    assert n_m[4].tolist() == list(range(1, 9))  # zero query: all ties, index order
    assert n_m[2][:3].tolist() == [2, 9, 30]  # identical rows tie at the top, index order
    assert n_m[30][:3].tolist() == [2, 9, 30]
    # a tie across the H_m boundary: three identical rows compete for the last slot
    small = np.array([[0, 0], [1, 0], [1, 1], [1, 1], [1, 1], [0, 1], [0, 0]], dtype=np.float32)
    top2 = top_cosine(small, 2, chunk_mb=1e-5)
    assert top2[1:].tolist() == [[1, 2], [2, 3], [2, 3], [2, 3], [5, 2], [1, 2]]


def test_without_cooccurrence_equals_plain_top_h(data):
    seqs, feats = data
    w = build_cooccurrence(seqs, N_ITEMS)
    for H, mu_m in [(10, 2.5), (3, 1.0)]:
        wo_coo = build_modal_graph(feats, w, H, mu_m, 0.0)
        no_w = build_modal_graph(feats, sp.csr_matrix(w.shape, dtype=np.float32), H, mu_m, 0.3)
        plain = top_cosine(feats, H)
        assert np.array_equal(wo_coo.neighbours[1:], plain[1:])
        assert np.array_equal(no_w.neighbours[1:], plain[1:])
        assert wo_coo.stats["mean_intersection"] == 0.0


def test_neighbour_sizes_floor_with_epsilon():
    assert neighbour_sizes(10, 2.5, 0.3) == (25, 3)
    assert neighbour_sizes(100, 1.0, 0.29) == (100, 29)  # 100 * 0.29 = 28.999999999999996
    assert neighbour_sizes(10, 1.0, 0.0) == (10, 0)
    with pytest.raises(ValueError):
        neighbour_sizes(10, 0.5, 0.3)


def test_fused_features_concatenate_normalised_rows(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 3)).astype(np.float32) * 10
    b = rng.normal(size=(5, 2)).astype(np.float32)
    a[0] = b[0] = 0
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    fused = load_features([tmp_path / "a.npy", tmp_path / "b.npy"])
    np.testing.assert_allclose(fused, np.hstack([normalise_features(a), normalise_features(b)]))
    np.testing.assert_allclose(np.linalg.norm(fused[1:], axis=1), np.sqrt(2), rtol=1e-6)
    np.save(tmp_path / "c.npy", a[:4])
    with pytest.raises(ValueError, match="disagree on n_items"):
        load_features([tmp_path / "a.npy", tmp_path / "c.npy"])
    a[2, 1] = np.nan
    np.save(tmp_path / "a.npy", a)
    with pytest.raises(ValueError, match="row 2"):
        load_features([tmp_path / "a.npy"])


def test_centres_membership_and_determinism(data):
    _, feats = data
    first = build_centres(feats, 5, seed=3)
    again = build_centres(feats, 5, seed=3)
    assert np.array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.centres, again.centres)
    assert first.labels[0] == -1 and (first.labels[1:] >= 0).all()
    m = first.membership
    assert m.shape == (5, N_ITEMS) and m[:, 0].nnz == 0
    sizes = np.bincount(first.labels[1:], minlength=5)
    rows = np.asarray(m.sum(axis=1)).ravel()
    np.testing.assert_allclose(rows[sizes > 0], 1.0, rtol=1e-6)
    # every real item belongs to exactly its labelled cluster
    dense = m.toarray()
    assert ((dense[:, 1:] > 0).sum(axis=0) == 1).all()
    assert np.array_equal(dense[:, 1:].argmax(axis=0), first.labels[1:])
    with pytest.raises(ValueError, match="k=0"):
        build_centres(feats, 0, seed=3)


def test_membership_matrix_empty_cluster_row_is_empty():
    m = membership_matrix(np.array([-1, 0, 0, 2]), 3)
    np.testing.assert_allclose(m.toarray(), [[0, 0.5, 0.5, 0], [0, 0, 0, 0], [0, 0, 0, 1]])


def test_cooccurrence_same_when_pairs_are_flushed_in_pieces(data, monkeypatch):
    from sgp4sr.graphs import cooccurrence

    seqs, _ = data
    whole = build_cooccurrence(seqs, N_ITEMS)
    monkeypatch.setattr(cooccurrence, "_FLUSH_PAIRS", 7)
    pieces = build_cooccurrence(seqs, N_ITEMS)
    np.testing.assert_allclose(pieces.toarray(), whole.toarray(), rtol=1e-6)
