"""``sgp4sr train run``: train and test one model on one prepared dataset folder.

Works outside Snakemake on any split folder (ours or a bare RecBole benchmark
folder ``<name>.{train,valid,test}.inter``); ID-only models need nothing else,
feature and graph models also need ``--features`` / ``--graphs``.

Example::

    sgp4sr train run --data ../shared/data/amazon-baby-paper-split --model sasrec \\
        --params '{"training": {"epochs": 50}, "model": {"hidden_size": 300}}' \\
        --out runs/baby/sasrec --threads 2

``sgp4sr train pretrain`` pre-trains MISSRec or UniSRec on source datasets
(``--source NAME DATA FEATURES``, repeated); ``train run --init OUT/model.pt``
then fine-tunes from it::

    sgp4sr train pretrain --model unisrec --source office results/office/data results/office/features \\
        --source baby results/baby/data results/baby/features --params '{"pretraining": {"epochs": 10}}' \\
        --out results/pretrain/unisrec/pantry
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
    _run_arguments(run)
    run.set_defaults(func=run_command)
    snap = sub.add_parser("snapshot", help="valid/test metrics of the best epoch so far of an unfinished run",
                          description="Evaluate the best weights in RUN_DIR/checkpoint.pt without touching the run "
                                      "(same arguments as `train run`, so the settings fingerprint matches).")
    _run_arguments(snap)
    snap.add_argument("--json-out", type=Path, help="also write the result here (JSON)")
    snap.set_defaults(func=snapshot_command)
    pre = sub.add_parser("pretrain", help="cross-domain pre-training (missrec, unisrec) on source datasets",
                         description="Pre-train on the sources' training prefixes with the model's contrastive "
                                     "objectives; write OUT/model.pt (no ID-sized weights) and OUT/metrics.json "
                                     "(loss curve). Resumes from OUT/checkpoint.pt after a kill.")
    pre.add_argument("--model", required=True, help="missrec or unisrec")
    pre.add_argument("--source", nargs=3, action="append", required=True, metavar=("NAME", "DATA", "FEATURES"),
                     help="a source dataset: its name, split folder and features folder (repeat per source)")
    pre.add_argument("--params", help="JSON string or JSON/YAML file: {model: {...}, pretraining: {epochs, "
                                      "batch_size, lr, ...}, max_len: N, modalities: [...]}")
    pre.add_argument("--seed", type=int, default=None,
                     help="seed of the initialisation, shuffling, dropout, drops (default: the config schema's seed)")
    pre.add_argument("--out", required=True, type=Path, help="output folder (model.pt, metrics.json)")
    pre.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    pre.set_defaults(func=pretrain_command)


def _run_arguments(run: argparse.ArgumentParser) -> None:
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
    run.add_argument("--init", type=Path, help="start from this pre-training checkpoint (train pretrain's model.pt)")


def _spec(args: argparse.Namespace):
    from sgp4sr.engine.run import read_params, spec_from_params

    return spec_from_params(read_params(args.params), data=args.data, out=args.out, model=args.model,
                            variant=args.variant, seed=args.seed, features=args.features, graphs=args.graphs,
                            threads=args.threads, init=args.init)


def snapshot_command(args: argparse.Namespace) -> int:
    from sgp4sr.engine.run import evaluate_checkpoint
    from sgp4sr.io import write_json

    result = evaluate_checkpoint(_spec(args))
    if args.json_out:
        write_json(args.json_out, result)
    print(json.dumps({k: result[k] for k in ("epochs_done", "best_epoch", "valid", "test")}, sort_keys=True))
    return 0


def run_command(args: argparse.Namespace) -> int:
    from sgp4sr.engine.run import run_training

    metrics = run_training(_spec(args))
    print(json.dumps({"test": metrics["test"], "best_epoch": metrics["best_epoch"]}, sort_keys=True))
    return 0


PRETRAIN_KEYS = ("model", "pretraining", "max_len", "modalities")


def pretrain_command(args: argparse.Namespace) -> int:
    from sgp4sr.engine.pretrain import PretrainSettings, Source, pretrain
    from sgp4sr.engine.run import read_params

    params = read_params(args.params, PRETRAIN_KEYS)
    settings = PretrainSettings.from_dict({**(params.get("pretraining") or {}),
                                           **({"max_len": params["max_len"]} if "max_len" in params else {})})
    sources = [Source(name, Path(data), Path(features)) for name, data, features in args.source]
    metrics = pretrain(args.model, sources, args.out, params.get("model"), settings,
                       params.get("modalities") or ("text", "image"), args.seed, args.threads)
    print(json.dumps({"loss": [c["loss"] for c in metrics["curve"]]}))
    return 0
