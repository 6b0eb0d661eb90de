"""Hyper-parameter selection on validation data, and the table of the chosen points.

Selection reads each grid point's ``valid`` block only (the best epoch's
validation metrics); the ``test`` block is never looked at, so the chosen
point is not fitted to the test users. Ties go to the earlier point in grid
order, which makes the choice reproducible.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from sgp4sr.report.render import Cell, Table, display, fmt_mean_std
from sgp4sr.report.runs import Run, metric_frame, summarise
from sgp4sr.variants import parse_variant

PARAM_KEYS = ("lr", "wd", "H", "mu_m", "mu_o", "k")


def point_values(variant: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The full parameter values of a grid point: its own tokens over the dataset's defaults."""
    parsed = parse_variant(variant)
    values = {k: defaults.get(k) for k in PARAM_KEYS}
    values.update(parsed.params)
    if "wo_cip" in parsed.ablations:
        values["k"] = 0
    return values


def select(runs: Sequence[Run], metric: str, defaults: Mapping[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick the grid point with the highest mean validation ``metric`` (over its seeds).

    Returns the selection record and the grid's validation scores (one row per
    point, in the given order). All runs must belong to one dataset and model.
    """
    if not runs:
        raise ValueError("tuning: no grid runs given")
    keys = {(r.dataset, r.model) for r in runs}
    if len(keys) != 1:
        raise ValueError(f"tuning: runs of several datasets/models given: {sorted(keys)}")
    dataset, model = next(iter(keys))
    valid_metrics = sorted(set.intersection(*(set(r.metrics.get("valid", {})) for r in runs)) | {metric})
    scores = summarise(metric_frame(runs, valid_metrics, split="valid"), ["variant", "metric"])
    wide = scores.pivot(index="variant", columns="metric", values="mean")
    order = list(dict.fromkeys(r.variant for r in runs))
    wide = wide.loc[order]
    if wide[metric].isna().all():
        raise ValueError(f"tuning: no grid point has a validation {metric}")
    best_variant = wide[metric].idxmax()  # first maximum in grid order
    rows = []
    for variant in order:
        rec = {"variant": variant, **point_values(variant, defaults)}
        rec.update({f"valid_{m}": float(wide.loc[variant, m]) for m in valid_metrics})
        rec["n_seeds"] = int(scores[(scores.variant == variant) & (scores.metric == metric)]["n"].iloc[0])
        rec["selected"] = variant == best_variant
        rows.append(rec)
    selected = {"dataset": dataset, "model": model, "metric": metric, "variant": best_variant,
                "values": point_values(best_variant, defaults), "valid_score": float(wide.loc[best_variant, metric]),
                "n_points": len(order), "defaults": {k: defaults.get(k) for k in PARAM_KEYS}}
    return selected, pd.DataFrame(rows)


def tuning_table(selections: Sequence[Mapping[str, Any]], runs: Sequence[Run], metrics: Sequence[str],
                 decimals: int = 4) -> tuple[Table, pd.DataFrame]:
    """Per dataset: the chosen values, their validation score, and the test scores of the chosen point
    retrained over the seeds next to the default configuration's."""
    summary = summarise(metric_frame(runs, metrics), ["dataset", "model", "variant", "metric"])
    columns = ["Dataset", "Configuration", *PARAM_KEYS, "Valid"] + [display(m) for m in metrics]
    rows, numbers = [], []
    for sel in selections:
        ds, model = sel["dataset"], sel["model"]
        configs = [(sel["variant"], "selected")] + ([("default", "default")] if sel["variant"] != "default" else [])
        for variant, label in configs:
            hits = summary[(summary.dataset == ds) & (summary.model == model) & (summary.variant == variant)]
            if hits.empty:
                continue
            values = sel["values"] if variant == sel["variant"] else sel.get("defaults", {})
            valid = f"{sel['valid_score']:.{decimals}f}" if variant == sel["variant"] else ""
            row = [Cell(ds), Cell(f"{label} ({variant})")]
            row += [Cell("" if values.get(k) is None else f"{values[k]:g}") for k in PARAM_KEYS]
            row.append(Cell(valid))
            for m in metrics:
                hit = hits[hits.metric == m]
                mean, std = (float(hit["mean"].iloc[0]), float(hit["std"].iloc[0])) if len(hit) else (math.nan, math.nan)
                row.append(Cell(fmt_mean_std(mean, std, decimals)))
                numbers.append({"dataset": ds, "model": model, "configuration": label, "variant": variant,
                                **{k: values.get(k) for k in PARAM_KEYS}, "metric": m, "test_mean": mean,
                                "test_std": std, "n_seeds": int(hit["n"].iloc[0]) if len(hit) else 0})
            rows.append(row)
    metric = selections[0]["metric"] if selections else "?"
    notes = [f"Selected by validation {display(metric)} of one seed per grid point (ties: first in grid order); "
             "the chosen point is then retrained over all seeds. Test columns: mean ± std over seeds."]
    return Table(columns, rows, f"Hyper-parameter search ({display(selections[0]['model']) if selections else ''})",
                 notes), pd.DataFrame(numbers)
