"""Build a model's :class:`ModelContext` from the files of the earlier stages.

Only what the model's ``requires`` names is read, so an ID-only model trains on
a bare benchmark folder with no features or graphs at all. The file names are
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
import scipy.sparse as sp

from sgp4sr.models.base import ModelContext
from sgp4sr.variants import format_number

log = logging.getLogger(__name__)

#: the virtual modality the graph stage builds for the ``wo_mul`` ablation
FUSED = "fused"


@dataclass
class ContextFiles:
    """Paths a run reads, by role (empty when the model does not need that role)."""

    features: dict[str, Path] = field(default_factory=dict)
    cooccurrence: Path | None = None
    modal_graphs: dict[str, Path] = field(default_factory=dict)
    centres: dict[str, Path] = field(default_factory=dict)
    #: ``wo_mul``: the feature files concatenated (rows normalised) into the ``fused`` modality
    fused_features: list[Path] = field(default_factory=list)

    def all(self) -> list[Path]:
        paths = list(self.features.values()) + list(self.modal_graphs.values()) + list(self.centres.values())
        paths += [p for p in self.fused_features if p not in paths]
        return paths + ([self.cooccurrence] if self.cooccurrence else [])


def feature_file(features_dir: str | Path, modality: str, fset: str = "clean") -> Path:
    """``<modality>.npy``, or ``<modality>@noise<r>.npy`` when ``fset`` names this modality's noisy variant."""
    noisy_modality = fset.split("@", 1)[0] if fset != "clean" else None
    name = fset if noisy_modality == modality else modality
    return Path(features_dir) / f"{name}.npy"


def graph_suffix(settings: Mapping[str, Any]) -> str:
    return (f"H{int(settings['knn_k'])}_m{format_number(settings['mu_m'])}"
            f"_o{format_number(settings['mu_o'])}")


def context_files(requires: Iterable[str], modalities: Sequence[str], features_dir: str | Path | None,
                  graphs_dir: str | Path | None, fset: str = "clean", graph_settings: Mapping[str, Any] | None = None,
                  centres_seed: int = 2026, ablations: Sequence[str] = ()) -> ContextFiles:
    """Which files a model with ``requires`` reads (``wo_mul`` swaps the modal graphs for the ``fused`` one)."""
    requires = set(requires)
    files = ContextFiles()
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
        files.cooccurrence = Path(graphs_dir) / "cooccurrence.npz"  # type: ignore[arg-type]
    if requires & {"modal_graphs", "centres"}:
        if graph_settings is None:
            raise ValueError("this model needs modal graphs: graph settings (knn_k, mu_m, mu_o, centres) are missing")
        sub = Path(graphs_dir) / fset  # type: ignore[arg-type]
        if "modal_graphs" in requires:
            files.modal_graphs = {m: sub / f"{m}_{graph_suffix(graph_settings)}.npz" for m in graph_modalities}
        k = int(graph_settings.get("centres", 0))
        if "centres" in requires and k > 0:  # k = 0: no centres built (models without centres)
            files.centres = {m: sub / f"{m}_centres_k{k}_s{int(centres_seed)}.npz" for m in graph_modalities}
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
    log.info("context: features %s, cooccurrence %s, modal graphs %s, centres %s", sorted(ctx.features),
             ctx.cooccurrence is not None, sorted(ctx.modal_graphs), sorted(ctx.centres))
    return ctx


def discover_modalities(features_dir: str | Path | None) -> list[str]:
    """Clean modalities present in a features folder (``*.npy`` without ``@``), sorted."""
    if features_dir is None or not Path(features_dir).is_dir():
        return []
    return sorted(p.stem for p in Path(features_dir).glob("*.npy") if "@" not in p.stem)
