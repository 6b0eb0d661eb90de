"""Recall@K of finished runs by how often the test target was seen in training (quartiles).

Which models rank rare targets? An ID model learns frequent items; content
should carry the rare ones. Reads each run's ``ranks.parquet`` (every seed
found) and the split; prints one row per model: Recall@K over the users whose
test item falls in each quartile of training counts, averaged over seeds.

    python benchmarks/tail_recall.py --dataset demo --models popularity sasrec sasrecf sgp4sr oracle
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sgp4sr import layout
from sgp4sr.data.load import load_split


def target_quartiles(root: Path, dataset: str) -> tuple[np.ndarray, list[str]]:
    """Per user the quartile (0-3) of its test item's training count, and the quartiles' names."""
    split = load_split(root / layout.data_dir(dataset))
    counts = np.bincount(np.concatenate(split.train_seqs), minlength=split.n_items)[split.test_items]
    edges = np.quantile(counts, [0.25, 0.5, 0.75])
    names = [f"Q{i + 1} ({lo:g}-{hi:g})" for i, (lo, hi) in
             enumerate(zip([counts.min(), *edges], [*edges, counts.max()]))]
    return np.digitize(counts, edges), names


def recall_by_quartile(ranks: list[np.ndarray], quartile: np.ndarray, k: int = 10) -> tuple[list[float], float]:
    """Recall@k per quartile (0-3) and over all users, of per-user ranks averaged over seeds."""
    hit = np.mean([r <= k for r in ranks], axis=0)
    return [float(hit[quartile == q].mean()) for q in range(4)], float(hit.mean())


def tail_table(root: Path, dataset: str, models: list[str], variant: str = "default", k: int = 10) -> pd.DataFrame:
    quartile, names = target_quartiles(root, dataset)
    rows = []
    for model in models:
        pattern = layout.RUN_DIR.format(dataset=dataset, model=model, variant=variant, seed="*")
        runs = sorted(root.glob(f"{pattern}/ranks.parquet"))
        if not runs:
            continue
        by_quartile, overall = recall_by_quartile([pd.read_parquet(p)["test_rank"].to_numpy() for p in runs],
                                                  quartile, k)
        rows.append({"model": model, "seeds": len(runs), **dict(zip(names, by_quartile)),
                     f"all recall@{k}": overall})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the workflow's working directory (holds results/)")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--models", nargs="+",
                        default=["popularity", "sasrec", "gru4rec", "bert4rec", "fdsa", "sasrecf", "sgp4sr", "oracle"])
    parser.add_argument("--variant", default="default")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    table = tail_table(Path(args.root), args.dataset, args.models, args.variant, args.k)
    print(f"Recall@{args.k} by the test target's training count (quartiles of users), {args.dataset}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
