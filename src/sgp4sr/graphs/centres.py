"""Interest-centre membership ``C_m`` (spec §1): mini-batch k-means over item features.

File format (``<modality>_centres_k<k>_s<seed>.npz``, one ``np.savez_compressed``
archive so the three arrays can never come from different runs):
``membership_data/indices/indptr/shape`` (CSR ``k x n_items``, ``1/|cluster|``
at each member), ``labels`` (``n_items`` int64, ``-1`` for padding),
``centres`` (``k x d_m`` float32), ``seed`` and ``k``. Read it with
:func:`load_centres`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import MiniBatchKMeans

from sgp4sr.io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class Centres:
    membership: sp.csr_matrix  # (k, n_items): 1/|c| for members of cluster c
    labels: np.ndarray  # (n_items,) cluster of each item, -1 for padding
    centres: np.ndarray  # (k, d_m)
    seed: int

    @property
    def k(self) -> int:
        return self.membership.shape[0]


def membership_matrix(labels: np.ndarray, k: int) -> sp.csr_matrix:
    """``C[c, i] = 1/|c|`` for every real item ``i`` with label ``c`` (empty clusters: empty rows)."""
    items = np.flatnonzero(labels >= 0)
    clusters = labels[items]
    sizes = np.bincount(clusters, minlength=k)
    values = (1.0 / sizes[clusters]).astype(np.float32)
    matrix = sp.csr_matrix((values, (clusters, items)), shape=(k, labels.size))
    matrix.sort_indices()
    return matrix


#: ``MiniBatchKMeans`` settings besides ``n_clusters`` and ``random_state``, by name.
KMEANS = {
    # the release's call, MiniBatchKMeans(k, init_size=1024, batch_size=1024, random_state=seed), the rest at
    # scikit-learn's defaults (max_iter 100; n_init 'auto' = one k-means++ start since scikit-learn 1.4)
    "code": {"init_size": 1024, "batch_size": 1024},
    # this project's earlier setting: best of three k-means++ starts, each on 3 x batch_size samples
    "best_of_3": {"batch_size": 1024, "n_init": 3, "max_iter": 100},
}


def build_centres(features: np.ndarray, k: int, seed: int, kmeans: str = "code", **options) -> Centres:
    """Cluster the real items' feature rows (row 0 is padding) with a seeded ``MiniBatchKMeans``.

    ``kmeans`` names the settings (:data:`KMEANS`: ``code``, the release's, or
    ``best_of_3``); ``options`` override single ``MiniBatchKMeans`` arguments
    (tests and benchmarks shorten ``max_iter``). Deterministic for a given seed
    and thread count (scikit-learn's updates are chunked by thread).
    """
    if kmeans not in KMEANS:
        raise ValueError(f"kmeans must be one of {sorted(KMEANS)}, got {kmeans!r}")
    n_items = features.shape[0]
    if k < 1:
        raise ValueError(f"k={k}: the centre number must be >= 1 (k=0 means no centres; do not build them)")
    if k > n_items - 1:
        raise ValueError(f"k={k} centres for only {n_items - 1} items")
    # float64: scikit-learn's float32 path upcasts chunk by chunk in k-means++, about 2x slower here.
    data = np.asarray(features[1:], dtype=np.float64)
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, **{**KMEANS[kmeans], **options})
    item_labels = km.fit_predict(data)
    labels = np.concatenate([[-1], item_labels]).astype(np.int64)
    membership = membership_matrix(labels, k)
    empty = int((np.diff(membership.indptr) == 0).sum())
    if empty:
        log.warning("%d of %d clusters are empty (duplicated feature rows?)", empty, k)
    return Centres(membership, labels, km.cluster_centers_.astype(np.float32), int(seed))


def save_centres(path: str | os.PathLike, centres: Centres) -> None:
    m = centres.membership.tocsr()
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            membership_data=m.data, membership_indices=m.indices, membership_indptr=m.indptr,
            membership_shape=np.array(m.shape), labels=centres.labels, centres=centres.centres,
            seed=np.array(centres.seed), k=np.array(m.shape[0]),
        )


def load_centres(path: str | os.PathLike, n_items: int | None = None) -> Centres:
    """Read a centres archive written by :func:`save_centres`; check it is complete and consistent."""
    with np.load(path, allow_pickle=False) as z:
        missing = {"membership_data", "membership_indices", "membership_indptr", "membership_shape",
                   "labels", "centres", "seed"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: not a centres archive, missing {sorted(missing)}")
        shape = tuple(int(x) for x in z["membership_shape"])
        membership = sp.csr_matrix(
            (z["membership_data"], z["membership_indices"], z["membership_indptr"]), shape=shape
        )
        labels, centres, seed = z["labels"], z["centres"], int(z["seed"])
    if labels.shape != (shape[1],) or centres.shape[0] != shape[0]:
        raise ValueError(f"{path}: membership {shape}, labels {labels.shape}, centres {centres.shape} disagree")
    if n_items is not None and shape[1] != n_items:
        raise ValueError(f"{path}: centres cover {shape[1]} items, expected n_items={n_items}")
    return Centres(membership, labels, centres, seed)


def cluster_size_stats(labels: np.ndarray, k: int) -> dict:
    """Sizes of the ``k`` clusters (the report shows them), with their spread."""
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    return {
        "k": int(k),
        "sizes": sizes.tolist(),
        "min": int(sizes.min()),
        "max": int(sizes.max()),
        "mean": float(sizes.mean()),
        "median": float(np.median(sizes)),
        "empty": int((sizes == 0).sum()),
    }
