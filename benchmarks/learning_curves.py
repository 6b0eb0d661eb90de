"""Learning curves, best epochs and per-score-term test metrics of finished runs, as Markdown tables.

Reads every seed's ``metrics.json`` of each ``<model>/<variant>`` (``sgp4sr.layout.RUN_DIR``, what
``snakemake all`` leaves under ``--root``) and prints, per dataset:

* the validation metric per epoch, mean over seeds, for every model/variant;
* best epoch, epochs run and test R@10 / N@10 / R@50 / N@50 (mean ± std over seeds);
* for models whose score is a sum of terms (SGP4SR: ``id`` and one per
  modality), the test R@10 / N@10 of each term alone (``test_by_score_term``).

    python benchmarks/learning_curves.py --dataset ml100k --runs sgp4sr/default sgp4sr/wo_cip sgp4sr/wo_cgc \\
        sasrec/default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sgp4sr import layout

METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def seed_files(root: Path, dataset: str, run: str, name: str) -> list[Path]:
    """``name`` in every seed folder of ``<model>/<variant>`` (layout.RUN_DIR)."""
    model, _, variant = run.partition("/")
    pattern = layout.RUN_DIR.format(dataset=dataset, model=model, variant=variant or "default", seed="*")
    return sorted(root.glob(f"{pattern}/{name}"))


def load(root: Path, dataset: str, run: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in seed_files(root, dataset, run, "metrics.json")]


def ms(values: list[float], fmt: str = ".4f") -> str:
    if not values:
        return "—"
    sd = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):{fmt}} ± {sd:{fmt}}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="the workflow's working directory (holds results/)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="<model>/<variant> folders under runs/")
    p.add_argument("--vs", help="a <model>/<variant> that every other run is tested against (paired Wilcoxon "
                                "over users of per-user NDCG@10, averaged over seeds first, as Table 2)")
    args = p.parse_args()
    runs = {run: load(args.root, args.dataset, run) for run in args.runs}
    metric = next((r[0]["config"]["training"]["valid_metric"] for r in runs.values() if r), "recall@5")

    width = max((len(m["curve"]) for r in runs.values() for m in r), default=0)
    print(f"Validation {metric} per epoch ({args.dataset}, mean over seeds; * = best epoch of the mean curve)\n")
    print("| run | seeds | " + " | ".join(str(e) for e in range(1, width + 1)) + " |")
    print("|" + "---|" * (width + 2))
    for run, seeds in runs.items():
        curves = [[h["valid"][metric] for h in m["curve"]] for m in seeds]
        cells = []
        for e in range(width):
            values = [c[e] for c in curves if len(c) > e]
            cells.append(f"{np.mean(values):.4f}" if values else "")
        if cells and any(cells):
            best = int(np.nanargmax([float(c) if c else np.nan for c in cells]))
            cells[best] += "*"
        print(f"| {run} | {len(seeds)} | " + " | ".join(cells) + " |")

    print(f"\nTest metrics ({args.dataset}, mean ± std over seeds)\n")
    print("| run | seeds | best epoch | epochs run | s/epoch | " + " | ".join(METRICS) + " |")
    print("|" + "---|" * (5 + len(METRICS)))
    for run, seeds in runs.items():
        print(f"| {run} | {len(seeds)} | {ms([m['best_epoch'] for m in seeds], '.1f')} "
              f"| {ms([m['epochs_run'] for m in seeds], '.1f')} | {ms([m['seconds_per_epoch'] for m in seeds], '.1f')} | "
              + " | ".join(ms([m["test"][k] for m in seeds]) for k in METRICS) + " |")

    if args.vs:
        from sgp4sr.report.significance import paired_wilcoxon, seed_averaged_user_metric

        def per_user(run: str):
            files = seed_files(args.root, args.dataset, run, "ranks.parquet")
            return seed_averaged_user_metric(files, "ndcg@10")

        ref = per_user(args.vs)
        print(f"\nPaired Wilcoxon vs {args.vs} ({args.dataset}, test NDCG@10 per user, seeds averaged)\n")
        print("| run | seeds | mean NDCG@10 | ref mean | p |")
        print("|---|---|---|---|---|")
        for run, seeds in runs.items():
            if run != args.vs and seeds:
                scores = per_user(run)
                test = paired_wilcoxon(scores, ref)
                print(f"| {run} | {len(seeds)} | {scores.mean():.4f} | {ref.mean():.4f} | {test['p_value']:.2g} |")

    termed = {run: seeds for run, seeds in runs.items() if seeds and seeds[0].get("test_by_score_term")}
    if termed:
        print(f"\nEach score term alone ({args.dataset}, test, mean ± std over seeds)\n")
        print("| run | term | R@10 | N@10 | R@50 |")
        print("|---|---|---|---|---|")
        for run, seeds in termed.items():
            print(f"| {run} | all | {ms([m['test']['recall@10'] for m in seeds])} "
                  f"| {ms([m['test']['ndcg@10'] for m in seeds])} | {ms([m['test']['recall@50'] for m in seeds])} |")
            for term in seeds[0]["test_by_score_term"]:
                t = [m["test_by_score_term"][term] for m in seeds if term in m.get("test_by_score_term", {})]
                print(f"| {run} | {term} alone | {ms([x['recall@10'] for x in t])} | {ms([x['ndcg@10'] for x in t])} "
                      f"| {ms([x['recall@50'] for x in t])} |")


if __name__ == "__main__":
    main()
