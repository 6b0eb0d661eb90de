"""``sgp4sr prepare <step>``: the data stage's commands, one per Snakemake rule."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("sgp4sr.prepare")


def _json_arg(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def cmd_download(args: argparse.Namespace) -> None:
    from sgp4sr.data.download import download_file

    download_file(args.url, args.dest, sha256=args.sha256, size=args.size, retries=args.retries,
                  progress=not args.no_progress)


def cmd_demo(args: argparse.Namespace) -> None:
    from sgp4sr.data.demo import generate_demo

    generate_demo(args.out_dir, args.config_json, args.seed, category=args.category)


def _write_parsed(out_dir: str, interactions, items) -> None:
    from sgp4sr.io import write_parquet

    write_parquet(Path(out_dir) / "interactions.parquet", interactions)
    write_parquet(Path(out_dir) / "items.parquet", items)


def cmd_parse(args: argparse.Namespace) -> None:
    from sgp4sr.data.parse import parse_meta, parse_ratings, parse_reviews

    if args.ratings:
        reviews = parse_ratings(args.ratings, skip_malformed=args.skip_malformed)
    else:
        reviews = parse_reviews(args.reviews, skip_malformed=args.skip_malformed)
    # Only items someone reviewed can survive the k-core: skip decoding the others' metadata.
    meta = parse_meta(args.meta, skip_malformed=args.skip_malformed, keep_asins=set(reviews["item"].unique().tolist()))
    _write_parsed(args.out_dir, reviews, meta)


def cmd_parse_recbole(args: argparse.Namespace) -> None:
    from sgp4sr.data.recbole import empty_items, parse_inter, parse_items

    interactions = parse_inter(args.inter, args.rating_threshold)
    items = parse_items(args.item, args.text_fields) if args.item else empty_items()
    _write_parsed(args.out_dir, interactions, items)


def cmd_filter(args: argparse.Namespace) -> None:
    import pandas as pd

    from sgp4sr.data.kcore import KCoreError, filter_interactions
    from sgp4sr.io import write_parquet

    setting = f"datasets.{args.dataset}.kcore" if args.dataset else "kcore"
    meta_items = None
    if args.require_meta and not args.items:
        raise ValueError("prepare filter --require-meta needs --items (the parsed items.parquet)")
    if args.require_meta:  # items.parquet holds one row per item with a metadata record
        meta_items = set(pd.read_parquet(args.items, columns=["item"])["item"].astype(str))
    try:
        filtered = filter_interactions(pd.read_parquet(args.input), args.kcore, setting=setting, dedup=args.dedup,
                                       meta_items=meta_items)
    except KCoreError as exc:
        raise KCoreError(f"{args.input}: {exc}") from None
    write_parquet(args.output, filtered)


def cmd_split(args: argparse.Namespace) -> None:
    import pandas as pd

    from sgp4sr.data.split import write_split

    meta = pd.read_parquet(args.items) if args.items else None
    write_split(args.out_dir, pd.read_parquet(args.interactions), meta, args.unseen_targets)


def cmd_import_benchmark(args: argparse.Namespace) -> None:
    from sgp4sr.data.benchmark import import_benchmark

    import_benchmark(args.train, args.valid, args.test, args.out_dir, args.unseen_targets)


def cmd_stats(args: argparse.Namespace) -> None:
    from sgp4sr.data.stats import compute_stats
    from sgp4sr.io import write_json

    stats = compute_stats(args.data_dir, args.paper_json or None)
    write_json(args.output, stats)
    log.info("stats: %s", {k: v for k, v in stats.items() if k not in ("convention", "paper")})


def _unseen_targets_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unseen-targets", choices=("keep", "drop"), default="keep",
                        help="datasets.<ds>.unseen_targets: keep (counted, logged) or drop the users whose "
                        "validation/test item is in no training sequence")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prepare",
                                   help="data stage: download, demo, parse, parse-recbole, filter, split, stats")
    steps = parser.add_subparsers(dest="step", metavar="STEP")
    steps.required = True

    p = steps.add_parser("download", help="fetch one file with retries, resume and checks")
    p.add_argument("--url", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--sha256")
    p.add_argument("--size", type=int)
    p.add_argument("--retries", type=int, default=4)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_download)

    p = steps.add_parser("demo", help="generate the synthetic demo shop's raw files")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--config-json", type=_json_arg, default={}, help="datasets.<ds>.demo as JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--category", default="Demo", help="name used in the raw file names")
    p.set_defaults(func=cmd_demo)

    p = steps.add_parser("parse", help="raw reviews (or 2018 ratings CSV) + metadata -> parsed/*.parquet")
    interactions = p.add_mutually_exclusive_group(required=True)
    interactions.add_argument("--reviews", help="review file (.json[.gz], 2014 or 2018)")
    interactions.add_argument("--ratings", help="2018 ratings-only CSV <Category>.csv: item,user,rating,timestamp")
    p.add_argument("--meta", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--skip-malformed", action="store_true")
    p.set_defaults(func=cmd_parse)

    p = steps.add_parser("parse-recbole", help="RecBole atomic <name>.inter [+ <name>.item] -> parsed/*.parquet")
    p.add_argument("--inter", required=True, help="<name>.inter: user_id, item_id, timestamp [, rating] fields")
    p.add_argument("--item", help="<name>.item: item_id and the text fields (omitted: no item text)")
    p.add_argument("--text-fields", nargs="+", help=".item fields joined into the item text "
                   "(default: every token/token_seq field but item_id)")
    p.add_argument("--rating-threshold", type=float, help="keep only interactions rated at least this")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_parse_recbole)

    p = steps.add_parser("filter", help="drop repeated pairs (or exact duplicates), items without metadata, k-core")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--kcore", type=int, default=5)
    p.add_argument("--dataset", help="dataset name, to name its config key datasets.<ds>.kcore in errors")
    p.add_argument("--dedup", choices=("pair", "exact"), default="pair",
                   help="datasets.<ds>.dedup: pair = one event per user-item pair (earliest); exact = merge only "
                   "rows identical in user, item, time and rating")
    p.add_argument("--require-meta", action="store_true",
                   help="datasets.<ds>.require_meta: drop items without a metadata record before the k-core")
    p.add_argument("--items", help="parsed items.parquet: the items with a metadata record (for --require-meta)")
    p.set_defaults(func=cmd_filter)

    p = steps.add_parser("split", help="chronological leave-one-out -> data/ folder")
    p.add_argument("--interactions", required=True)
    p.add_argument("--items", help="parsed items.parquet (metadata); omitted: empty metadata")
    p.add_argument("--out-dir", required=True)
    _unseen_targets_arg(p)
    p.set_defaults(func=cmd_split)

    p = steps.add_parser("import-benchmark", help="RecBole benchmark atomic files -> data/ folder")
    p.add_argument("--train", help="<name>.train.inter (optional: rebuilt from the valid rows)")
    p.add_argument("--valid", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--out-dir", required=True)
    _unseen_targets_arg(p)
    p.set_defaults(func=cmd_import_benchmark)

    p = steps.add_parser("stats", help="Table 1 row of a data folder")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--paper-json", type=_json_arg, default={}, help="datasets.<ds>.paper_stats as JSON")
    p.set_defaults(func=cmd_stats)
