"""``sgp4sr report <step>``: the tables, figures and tuning selection of the results section.

Every step takes the files it reads as arguments (the Snakemake rule lists
them as inputs) and writes under the given output prefix, so each step also
runs by hand on any set of finished runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from sgp4sr.data.rules import DEMO_CATEGORY
from sgp4sr.engine.settings import TrainConfig
from sgp4sr.io import read_json, write_json
from sgp4sr.report.plan import BOUNDS

log = logging.getLogger("sgp4sr.report")


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _dataset_of_stats(path: str) -> str:
    """``results/<ds>/data/stats.json`` -> ``<ds>``."""
    parts = Path(path).parts
    if len(parts) < 3 or parts[-2] != "data" or parts[-1] != "stats.json":
        raise ValueError(f"{path}: expected results/<dataset>/data/stats.json")
    return parts[-3]


def cmd_table1(args: argparse.Namespace) -> None:
    from sgp4sr.report.render import write_table
    from sgp4sr.report.tables import table1

    stats = {_dataset_of_stats(p): read_json(p) for p in args.stats}
    table, numbers = table1(stats, args.paper_stats)
    for path in write_table(table, numbers, args.out_prefix):
        log.info("wrote %s", path)


def cmd_table2(args: argparse.Namespace) -> None:
    from sgp4sr.report.render import write_table
    from sgp4sr.report.runs import load_runs
    from sgp4sr.report.tables import table2

    table, numbers = table2(load_runs(args.runs), args.proposed, args.metrics, args.significance_metric)
    for path in write_table(table, numbers, args.out_prefix):
        log.info("wrote %s", path)


def cmd_bound(args: argparse.Namespace) -> None:
    from sgp4sr.report.bounds import write_bound

    write_bound(args.kind, args.data, args.out, args.topk, args.truth, args.category)


def cmd_table3(args: argparse.Namespace) -> None:
    from sgp4sr.report.render import write_table
    from sgp4sr.report.runs import load_runs
    from sgp4sr.report.tables import table3

    table, numbers = table3(load_runs(args.runs), args.proposed, args.variants, args.metrics)
    for path in write_table(table, numbers, args.out_prefix):
        log.info("wrote %s", path)


def cmd_figure_noise(args: argparse.Namespace) -> None:
    from sgp4sr.report.figures import figure_noise, noise_frame
    from sgp4sr.report.runs import load_runs

    frame = noise_frame(load_runs(args.runs), args.modality)
    for path in figure_noise(frame, args.proposed, args.modality, args.out_prefix):
        log.info("wrote %s", path)


def cmd_figure_centres(args: argparse.Namespace) -> None:
    from sgp4sr.report.figures import centre_frame, figure_centres
    from sgp4sr.report.runs import load_runs

    frame = centre_frame(load_runs(args.runs), args.default_k)
    for path in figure_centres(frame, args.proposed, args.out_prefix):
        log.info("wrote %s", path)


def cmd_tuning_select(args: argparse.Namespace) -> None:
    from sgp4sr.io import atomic_path
    from sgp4sr.report.runs import load_runs
    from sgp4sr.report.tuning import select

    selected, grid = select(load_runs(args.runs), args.metric, args.defaults)
    with atomic_path(args.grid_out) as tmp:
        grid.to_csv(tmp, index=False)
    write_json(args.out, selected)
    log.info("selected %s (validation %s = %.4f) among %d points", selected["variant"], args.metric,
             selected["valid_score"], selected["n_points"])


def cmd_tuning_table(args: argparse.Namespace) -> None:
    from sgp4sr.report.render import write_table
    from sgp4sr.report.runs import load_runs
    from sgp4sr.report.tuning import tuning_table

    selections = [read_json(p) for p in args.selected]
    table, numbers = tuning_table(selections, load_runs(args.runs), args.metrics)
    for path in write_table(table, numbers, args.out_prefix):
        log.info("wrote %s", path)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="tables, figures and hyper-parameter selection")
    steps = parser.add_subparsers(dest="step", metavar="STEP")
    steps.required = True

    def step(name: str, func, help_text: str, prefix: bool = True) -> argparse.ArgumentParser:
        p = steps.add_parser(name, help=help_text)
        if prefix:
            p.add_argument("--out-prefix", required=True, help="output path without suffix (.csv/.md/... added)")
        p.set_defaults(func=func)
        return p

    metrics = dict(nargs="+", default=["recall@10", "ndcg@10", "recall@50", "ndcg@50"], help="test metrics shown")

    p = step("table1", cmd_table1, "dataset statistics (Table 1)")
    p.add_argument("--stats", nargs="+", required=True, help="results/<ds>/data/stats.json files")
    p.add_argument("--paper-stats", type=_json_arg, default={}, help='JSON {dataset: {users: ..., ...}}')

    p = step("bound", cmd_bound, "a reference row of Table 2: popularity, or the demo's oracle", False)
    p.add_argument("--kind", required=True, choices=BOUNDS)
    p.add_argument("--data", required=True, help="the split folder, results/<ds>/data")
    p.add_argument("--out", required=True, help="results/<ds>/runs/<kind>/default/seed1")
    p.add_argument("--topk", type=int, nargs="+", default=list(TrainConfig().topk))
    p.add_argument("--truth", default=None, help="oracle: the demo's raw folder (truth_*.csv, law_*.json)")
    p.add_argument("--category", default=DEMO_CATEGORY, help="oracle: the demo's category name in its file names")

    p = step("table2", cmd_table2, "models x datasets with significance (Table 2)")
    p.add_argument("--runs", nargs="+", required=True, help="metrics.json files (ranks.parquet beside them)")
    p.add_argument("--proposed", default="sgp4sr")
    p.add_argument("--metrics", **metrics)
    p.add_argument("--significance-metric", default="ndcg@10")

    p = step("table3", cmd_table3, "ablations (Table 3)")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--proposed", default="sgp4sr")
    p.add_argument("--variants", nargs="+", required=True, help="row order: default then the ablations")
    p.add_argument("--metrics", **metrics)

    p = step("figure-noise", cmd_figure_noise, "scores against the modality noise ratio (Figure 3)")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--proposed", default="sgp4sr")
    p.add_argument("--modality", default="image")

    p = step("figure-centres", cmd_figure_centres, "scores against the number of centres k (Figure 4)")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--proposed", default="sgp4sr")
    p.add_argument("--default-k", type=_json_arg, default={}, help="JSON {dataset: k of a default run}")

    p = step("tuning-select", cmd_tuning_select, "pick the grid point with the best validation metric", False)
    p.add_argument("--runs", nargs="+", required=True, help="one metrics.json per grid point")
    p.add_argument("--metric", default="recall@5", help="validation metric to maximise")
    p.add_argument("--defaults", type=_json_arg, default={}, help="JSON of the dataset's default values")
    p.add_argument("--out", required=True, help="selected.json")
    p.add_argument("--grid-out", required=True, help="grid.csv: every point's validation scores")

    p = step("tuning-table", cmd_tuning_table, "the chosen points, retrained over the seeds")
    p.add_argument("--selected", nargs="+", required=True, help="selected.json files")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--metrics", **metrics)
