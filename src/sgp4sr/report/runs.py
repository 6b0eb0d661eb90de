"""Reading finished runs: ``metrics.json`` files named by the run-path contract.

A run's dataset, model, variant and seed are taken from its path
(``results/<ds>/runs/<model>/<variant>/seed<seed>/metrics.json``,
docs/architecture.md), so the report cannot attribute a number to the wrong
experiment even if a metrics file's own config block changes shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

_RUN_PATH = re.compile(r"(?:^|/)(?P<dataset>[^/]+)/runs/(?P<model>[^/]+)/(?P<variant>[^/]+)/seed(?P<seed>\d+)/"
                       r"metrics\.json$")


@dataclass(frozen=True)
class Run:
    dataset: str
    model: str
    variant: str
    seed: int
    path: Path  # the metrics.json
    metrics: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ranks_path(self) -> Path:
        return self.path.with_name("ranks.parquet")

    def value(self, split: str, metric: str) -> float:
        """``metrics[split][metric]``, or a clear error naming the file and what it holds."""
        block = self.metrics.get(split)
        if not isinstance(block, dict):
            raise KeyError(f"{self.path}: no '{split}' metrics block (keys: {', '.join(sorted(self.metrics))})")
        if metric not in block:
            raise KeyError(f"{self.path}: no '{metric}' in '{split}' (has: {', '.join(sorted(block))})")
        return float(block[metric])


def load_run(path: str | Path) -> Run:
    path = Path(path)
    match = _RUN_PATH.search(path.as_posix())
    if match is None:
        raise ValueError(f"{path}: not a run's metrics file; expected "
                         "results/<dataset>/runs/<model>/<variant>/seed<seed>/metrics.json")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(metrics).__name__}")
    return Run(match["dataset"], match["model"], match["variant"], int(match["seed"]), path, metrics)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Load each metrics file once (Snakemake may list a shared run under two experiments)."""
    return [load_run(p) for p in dict.fromkeys(str(p) for p in paths)]


def metric_frame(runs: Iterable[Run], metrics: Iterable[str], split: str = "test") -> pd.DataFrame:
    """Long frame: dataset, model, variant, seed, metric, value."""
    metrics = list(metrics)
    rows = [(r.dataset, r.model, r.variant, r.seed, m, r.value(split, m)) for r in runs for m in metrics]
    return pd.DataFrame(rows, columns=["dataset", "model", "variant", "seed", "metric", "value"])


def summarise(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, sample std (NaN for one seed) and number of seeds per group, in first-seen order."""
    grouped = frame.groupby(by, sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return out
