"""Build a model's :class:`ModelContext` from the files of the earlier stages.

Only what the model's ``requires`` names is read, so an ID-only model trains on
a bare benchmark folder with no features or graphs at all. Item category labels
(the ``categories`` role) are optional: a bare benchmark folder has no
``items.parquet``, and then the context carries none. The file names are
the contract of docs/architecture.md; :func:`context_files` is the single place
that spells them, and the Snakemake rule asks it (through
:mod:`sgp4sr.models.registry` metadata) which inputs a run needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sgp4sr import layout
from sgp4sr.config import config_seed
from sgp4sr.layout import FUSED, ITEMS_FILE
from sgp4sr.models.base import ModelContext
from sgp4sr.variants import Variant

log = logging.getLogger(__name__)


@dataclass
class ContextFiles:
    """Paths a run reads, by role (empty when the model does not need that role)."""

    features: dict[str, Path] = field(default_factory=dict)
    cooccurrence: Path | None = None
    modal_graphs: dict[str, Path] = field(default_factory=dict)
    centres: dict[str, Path] = field(default_factory=dict)
    #: ``wo_mul``: the feature files concatenated (rows normalised) into the ``fused`` modality
    fused_features: list[Path] = field(default_factory=list)
    #: ``categories``: the split's items.parquet; optional (absent in bare benchmark folders), so not in :meth:`all`
    items: Path | None = None

    def all(self) -> list[Path]:
        paths = list(self.features.values()) + list(self.modal_graphs.values()) + list(self.centres.values())
        paths += [p for p in self.fused_features if p not in paths]
        return paths + ([self.cooccurrence] if self.cooccurrence else [])


def feature_file(features_dir: str | Path, modality: str, fset: str = layout.CLEAN) -> Path:
    """``<modality>.npy``, or ``<modality>@noise<r>.npy`` when ``fset`` names this modality's noisy variant."""
    return Path(features_dir) / layout.feature_name(modality, fset)


def context_files(requires: Iterable[str], modalities: Sequence[str], features_dir: str | Path | None,
                  graphs_dir: str | Path | None, fset: str = layout.CLEAN,
                  graph_settings: Mapping[str, Any] | None = None, centres_seed: int | None = None,
                  ablations: Sequence[str] = (), data_dir: str | Path | None = None) -> ContextFiles:
    """Which files a model with ``requires`` reads: what its ablations leave unread is dropped
    (:meth:`sgp4sr.variants.Variant.requires`), and ``wo_mul`` swaps the modal graphs for the ``fused`` one.

    ``data_dir`` is the split folder; only the ``categories`` role reads it (its ``items.parquet``).
    ``centres_seed`` defaults to the config schema's ``seed``.
    """
    requires = set(Variant(tuple(ablations)).requires(requires))
    centres_seed = config_seed({}) if centres_seed is None else int(centres_seed)
    files = ContextFiles()
    if "categories" in requires and data_dir is not None:
        files.items = Path(data_dir) / ITEMS_FILE
    graph_modalities = [FUSED] if "wo_mul" in ablations else list(modalities)
    if "features" in requires:
        if features_dir is None:
            raise ValueError("this model needs item features: pass the features folder (--features)")
        files.features = {m: feature_file(features_dir, m, fset) for m in modalities}
        if "wo_mul" in ablations:
            files.fused_features = list(files.features.values())
    if requires & {"cooccurrence", "modal_graphs", "centres"} and graphs_dir is None:
        raise ValueError("this model needs graphs: pass the graphs folder (--graphs)")
    if "cooccurrence" in requires:
        files.cooccurrence = Path(graphs_dir) / layout.COOCCURRENCE  # type: ignore[arg-type]
    if requires & {"modal_graphs", "centres"}:
        if graph_settings is None:
            raise ValueError("this model needs modal graphs: graph settings (knn_k, mu_m, mu_o, centres) are missing")
        sub = Path(graphs_dir) / fset  # type: ignore[arg-type]
        if "modal_graphs" in requires:
            files.modal_graphs = {m: sub / layout.modal_graph_name(m, graph_settings) for m in graph_modalities}
        k = int(graph_settings.get("centres", 0))
        if "centres" in requires and k > 0:  # k = 0: no centres built (models without centres)
            files.centres = {m: sub / layout.centres_name(m, k, centres_seed) for m in graph_modalities}
    return files


def _load_graph(path: Path) -> sp.csr_matrix:
    from sgp4sr.graphs import load_graph  # the graph stage owns the file layout and its checks

    return load_graph(path)


def _load_centres(path: Path) -> sp.csr_matrix:
    """Membership (k, n_items) through the graph stage's reader, which owns the file layout."""
    from sgp4sr.graphs import load_centres

    return sp.csr_matrix(load_centres(path).membership)


def _check_rows(name: str, path: Path, n_rows: int, n_items: int) -> None:
    if n_rows != n_items:
        raise ValueError(f"{path}: {name} has {n_rows} rows but the split has {n_items} items (with padding); "
                         "was it built from another split?")


def category_labels(categories: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Dense label of each category string and the sorted label names; -1 where there is none.

    The label is the most specific level of the item's first path (HM4SR's code also reads only
    the first path), named by the whole path so equal leaf names under different parents stay
    apart. A path with only its root (one level) gets -1: on an Amazon category dataset the root
    is the same for every item and says nothing.
    """
    paths = []
    for text in categories:
        first = str(text or "").split("; ", 1)[0]
        levels = [level.strip() for level in first.split(" > ") if level.strip()]
        paths.append(" > ".join(levels) if len(levels) > 1 else "")
    names = sorted({p for p in paths if p})
    ids = {name: i for i, name in enumerate(names)}
    return np.array([ids.get(p, -1) for p in paths], dtype=np.int64), names


def load_item_categories(path: Path, n_items: int) -> np.ndarray | None:
    """(n_items,) int64 category labels from a split's items.parquet (-1: padding or unknown).

    None when the file is absent (bare benchmark folder) or names no category below a root
    (benchmark imports without metadata), so a model can tell "no labels" from "label -1".
    """
    if not Path(path).exists():
        log.info("context: no %s, so no item categories", path)
        return None
    table = pd.read_parquet(path, columns=["item_idx", "categories"])
    idx = table["item_idx"].to_numpy(dtype=np.int64)
    if len(idx) and (idx.min() < 1 or idx.max() >= n_items):
        raise ValueError(f"{path}: item_idx spans {idx.min()}..{idx.max()} but the split has items "
                         f"1..{n_items - 1}; was it written for another split?")
    codes, names = category_labels(table["categories"].tolist())
    if not names:
        log.info("context: %s names no category below a root, so no item categories", path)
        return None
    labels = np.full(n_items, -1, dtype=np.int64)
    labels[idx] = codes
    log.info("context: %d item categories, %d of %d items labelled", len(names), int((labels >= 0).sum()),
             n_items - 1)
    return labels


def load_context(files: ContextFiles, n_items: int, max_len: int, extra: Mapping[str, Any] | None = None) -> ModelContext:
    """Read the files into a :class:`ModelContext`, checking every shape against the split."""
    missing = [str(p) for p in files.all() if not Path(p).exists()]
    if missing:
        raise FileNotFoundError("missing input file(s): " + ", ".join(missing))
    ctx = ModelContext(n_items=n_items, max_len=max_len, extra=dict(extra or {}))
    for m, path in files.features.items():
        array = np.load(path, mmap_mode="r")
        if array.ndim != 2:
            raise ValueError(f"{path}: features must be 2-D (n_items, d), got shape {array.shape}")
        _check_rows("feature matrix", path, array.shape[0], n_items)
        ctx.features[m] = np.asarray(array, dtype=np.float32)
    if files.fused_features:
        from sgp4sr.graphs.neighbours import load_features  # the graph stage defines how `fused` is built

        ctx.features[FUSED] = load_features(files.fused_features)
    if files.cooccurrence is not None:
        ctx.cooccurrence = _load_graph(files.cooccurrence)
        _check_rows("co-occurrence matrix", files.cooccurrence, ctx.cooccurrence.shape[0], n_items)
    for m, path in files.modal_graphs.items():
        ctx.modal_graphs[m] = _load_graph(path)
        _check_rows("modal graph", path, ctx.modal_graphs[m].shape[0], n_items)
    for m, path in files.centres.items():
        ctx.centres[m] = _load_centres(path)
        if ctx.centres[m].shape[1] != n_items:
            raise ValueError(f"{path}: membership has {ctx.centres[m].shape[1]} columns, expected {n_items}")
    if files.items is not None:
        ctx.item_categories = load_item_categories(files.items, n_items)
    log.info("context: features %s, cooccurrence %s, modal graphs %s, centres %s", sorted(ctx.features),
             ctx.cooccurrence is not None, sorted(ctx.modal_graphs), sorted(ctx.centres))
    return ctx


def discover_modalities(features_dir: str | Path | None) -> list[str]:
    """Clean modalities present in a features folder (``*.npy`` without ``@``), sorted."""
    if features_dir is None or not Path(features_dir).is_dir():
        return []
    return sorted(p.stem for p in Path(features_dir).glob("*.npy") if "@" not in p.stem)
