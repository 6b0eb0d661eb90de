"""``sgp4sr train run``: train and test one model on one prepared dataset folder.

Works outside Snakemake on any split folder (ours or a bare RecBole benchmark
folder ``<name>.{train,valid,test}.inter``); ID-only models need nothing else,
feature and graph models also need ``--features`` / ``--graphs``.

Example::

    sgp4sr train run --data ../shared/data/amazon-baby-paper-split --model sasrec \\
        --params '{"training": {"epochs": 50}, "model": {"hidden_size": 300}}' \\
        --out runs/baby/sasrec --threads 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train and evaluate models")
    sub = parser.add_subparsers(dest="train_command", metavar="COMMAND")
    sub.required = True
    run = sub.add_parser("run", help="one run: fit with early stopping, test the best epoch, write the run folder",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--data", required=True, type=Path, help="split folder (results/<ds>/data or a benchmark folder)")
    run.add_argument("--features", type=Path, help="folder with <modality>.npy (needed by feature models)")
    run.add_argument("--graphs", type=Path, help="folder with cooccurrence.npz and <fset>/ graphs (SGP4SR)")
    run.add_argument("--model", required=True, help="registered model name, e.g. sasrec, gru4rec, sgp4sr")
    run.add_argument("--variant", default="default", help="run variant (docs/architecture.md), e.g. wo_cip or lr~0.0005")
    run.add_argument("--seed", type=int, default=1, help="seed of the run (initialisation, shuffling, dropout)")
    run.add_argument("--params", help="JSON string or JSON/YAML file: {training: {...}, model: {...}, graphs: {...}, "
                                      "modalities: [...], centres_seed: N, dataset: NAME}")
    run.add_argument("--out", required=True, type=Path, help="run folder (metrics.json, ranks.parquet, model.pt)")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    run.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from sgp4sr.engine.run import read_params, run_training, spec_from_params

    params = read_params(args.params)
    spec = spec_from_params(params, data=args.data, out=args.out, model=args.model, variant=args.variant,
                            seed=args.seed, features=args.features, graphs=args.graphs, threads=args.threads)
    metrics = run_training(spec)
    print(json.dumps({"test": metrics["test"], "best_epoch": metrics["best_epoch"]}, sort_keys=True))
    return 0
