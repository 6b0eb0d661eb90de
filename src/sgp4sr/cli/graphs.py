"""``sgp4sr graphs <step>``: the offline artefacts of spec §1, one command per Snakemake rule.

Steps: ``cooccurrence`` (W from a split folder), ``modal-graph`` (A_m for one
modality and one (H, mu_m, mu_o), plus a JSON of build statistics beside it),
``centres`` (k-means membership) and ``summary`` (one JSON per feature set
and setting, for the report). Several ``--features`` files make the ``fused``
modality of the ``w/o MUL`` ablation.
"""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sgp4sr.io import read_json, write_json

log = logging.getLogger("sgp4sr.graphs")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("graphs", help="co-occurrence, modal graphs and interest centres (spec §1)")
    steps = parser.add_subparsers(dest="step", metavar="STEP")
    steps.required = True

    p = steps.add_parser("cooccurrence", help="co-occurrence matrix W from the training parts of a split")
    p.add_argument("--data", required=True, help="split folder (results/<ds>/data or a RecBole benchmark folder)")
    p.add_argument("--out", required=True, help="cooccurrence.npz (scipy CSR)")
    p.set_defaults(func=run_cooccurrence)

    p = steps.add_parser("modal-graph", help="co-occurrence guided modal graph A_m")
    p.add_argument("--cooccurrence", required=True, help="cooccurrence.npz")
    p.add_argument("--features", required=True, nargs="+", help="feature .npy; several = fused modality")
    p.add_argument("--modality", required=True, help="name recorded in the statistics")
    p.add_argument("--H", type=int, required=True, dest="H", help="neighbours per item (knn_k)")
    p.add_argument("--mu-m", type=float, required=True, help="H_m = floor(H * mu_m)")
    p.add_argument("--mu-o", type=float, required=True, help="H_o = floor(H * mu_o); 0 = w/o COO")
    p.add_argument("--chunk-mb", type=float, default=64.0, help="memory of one block of similarities")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="graph .npz (scipy CSR)")
    p.add_argument("--stats", required=True, help="JSON of build statistics (read by the summary)")
    p.set_defaults(func=run_modal_graph)

    p = steps.add_parser("centres", help="interest-centre membership by mini-batch k-means")
    p.add_argument("--features", required=True, nargs="+", help="feature .npy; several = fused modality")
    p.add_argument("--k", type=int, required=True, help="number of centres (>= 1)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--kmeans", choices=("code", "best_of_3"), default="code",  # sgp4sr.graphs.centres.KMEANS
                   help="MiniBatchKMeans settings: the released code's (default) or best of three starts")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="centres .npz (see sgp4sr.graphs.centres)")
    p.set_defaults(func=run_centres)

    p = steps.add_parser("summary", help="statistics of one feature set and setting, per modality")
    p.add_argument("--cooccurrence", required=True)
    p.add_argument("--graph-stats", required=True, nargs="+", help="modal-graph statistics JSONs")
    p.add_argument("--centres", nargs="*", default=[], help="centres .npz, same order as --graph-stats")
    p.add_argument("--out", required=True)
    p.set_defaults(func=run_summary)


@contextmanager
def _limit_threads(threads: int | None) -> Iterator[None]:
    """Honour Snakemake's ``threads:`` for torch and for numpy/scikit-learn's BLAS and OpenMP pools."""
    if not threads:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def run_cooccurrence(args: argparse.Namespace) -> int:
    from sgp4sr.graphs.cooccurrence import cooccurrence_from_split, save_sparse

    start = time.perf_counter()
    w = cooccurrence_from_split(args.data)
    save_sparse(args.out, w)
    log.info("wrote %s (%.1fs)", args.out, time.perf_counter() - start)
    return 0


def run_modal_graph(args: argparse.Namespace) -> int:
    from sgp4sr.graphs.cooccurrence import load_graph, save_sparse
    from sgp4sr.graphs.neighbours import build_modal_graph, load_features

    start = time.perf_counter()
    features = load_features(args.features)
    w = load_graph(args.cooccurrence, n_items=features.shape[0])
    with _limit_threads(args.threads):
        result = build_modal_graph(features, w, args.H, args.mu_m, args.mu_o, chunk_mb=args.chunk_mb)
    seconds = time.perf_counter() - start
    stats = dict(result.stats, modality=args.modality, features=[str(p) for p in args.features], seconds=seconds)
    save_sparse(args.out, result.graph)
    write_json(args.stats, stats)
    log.info("%s: H=%d H_m=%d H_o=%d, mean |N_m ∩ N_o| = %.3f, wrote %s (%.1fs)", args.modality,
             stats["H"], stats["H_m"], stats["H_o"], stats["mean_intersection"], args.out, seconds)
    return 0


def run_centres(args: argparse.Namespace) -> int:
    from sgp4sr.graphs.centres import build_centres, save_centres
    from sgp4sr.graphs.neighbours import load_features

    start = time.perf_counter()
    features = load_features(args.features)
    with _limit_threads(args.threads):
        centres = build_centres(features, args.k, args.seed, kmeans=args.kmeans)
    save_centres(args.out, centres)
    log.info("k=%d centres over %d items, wrote %s (%.1fs)", args.k, features.shape[0] - 1, args.out,
             time.perf_counter() - start)
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from sgp4sr.graphs.centres import cluster_size_stats, load_centres
    from sgp4sr.graphs.cooccurrence import items_without_cooccurrence, load_graph

    if args.centres and len(args.centres) != len(args.graph_stats):
        raise ValueError(f"{len(args.centres)} centres files for {len(args.graph_stats)} graph statistics")
    w = load_graph(args.cooccurrence)
    summary: dict = {
        "cooccurrence": {
            "n_items": int(w.shape[0]),
            "nnz": int(w.nnz),
            "items_without_cooccurrence": items_without_cooccurrence(w),
        },
        "modalities": {},
    }
    for i, stats_path in enumerate(args.graph_stats):
        stats = read_json(stats_path)
        if stats.get("n_items") != w.shape[0]:
            raise ValueError(f"{stats_path}: built for {stats.get('n_items')} items, {args.cooccurrence} has {w.shape[0]}")
        entry = {key: stats[key] for key in (
            "H", "H_m", "H_o", "mu_m", "mu_o", "mean_intersection", "items_without_cooccurrence",
            "zero_feature_items", "duplicate_feature_items")}
        if args.centres:
            centres = load_centres(args.centres[i], n_items=w.shape[0])
            entry["clusters"] = cluster_size_stats(centres.labels, centres.k)
            entry["clusters"]["seed"] = centres.seed
        summary["modalities"][stats.get("modality", Path(stats_path).stem)] = entry
    write_json(args.out, summary)
    log.info("wrote %s", args.out)
    return 0
