"""Tables 1-3 of the paper, from the data stage's ``stats.json`` and the runs' ``metrics.json``.

Table 2 reports mean ± std over seeds, marks the best (bold) and second
(underlined) per row, the improvement of the proposed model over the best
baseline as the paper computes it (relative, in %, on the means) and a paired
Wilcoxon test over users against that baseline.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from sgp4sr.report.plan import BOUNDS
from sgp4sr.report.render import Cell, Table, display, fmt_mean_std, marks
from sgp4sr.report.runs import Run, metric_frame, summarise
from sgp4sr.report.significance import check_against_mean, paired_wilcoxon, seed_averaged_user_metric

log = logging.getLogger(__name__)

STATS = ("users", "items", "interactions", "avg_length", "sparsity")
_STAT_LABEL = {"users": "#Users", "items": "#Items", "interactions": "#Interactions", "avg_length": "Avg. length",
               "sparsity": "Sparsity"}


def _fmt_stat(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if key in ("users", "items", "interactions"):
        return f"{int(value):,}"
    if key == "sparsity":
        # stored as a fraction (0.9987) or already in percent (99.87): show percent either way
        return f"{value * 100 if value <= 1 else value:.2f}%"
    return f"{value:.2f}"


def table1(stats: Mapping[str, Mapping[str, Any]], paper: Mapping[str, Mapping[str, Any]]) -> tuple[Table, pd.DataFrame]:
    """Dataset statistics, each beside the paper's value where ``paper_stats`` gives one."""
    for ds, values in stats.items():
        missing = [k for k in STATS if k not in values]
        if missing:
            raise KeyError(f"stats of '{ds}' lack {missing} (has: {', '.join(sorted(values))})")
    with_paper = [k for k in STATS if any(k in paper.get(ds, {}) for ds in stats)]
    columns = ["Dataset"]
    for key in STATS:
        columns.append(_STAT_LABEL[key])
        if key in with_paper:
            columns.append(f"{_STAT_LABEL[key]} (paper)")
    rows, numbers = [], []
    for ds, values in stats.items():
        row = [Cell(ds)]
        for key in STATS:
            row.append(Cell(_fmt_stat(key, values[key])))
            if key in with_paper:
                row.append(Cell(_fmt_stat(key, paper.get(ds, {}).get(key))))
            numbers.append({"dataset": ds, "statistic": key, "ours": values[key],
                            "paper": paper.get(ds, {}).get(key)})
        rows.append(row)
    table = Table(columns, rows, "Table 1: dataset statistics after preprocessing",
                  ["(paper) columns: the paper's Table 1, where the config's paper_stats gives it."] if with_paper else [])
    return table, pd.DataFrame(numbers)


def _model_order(runs: Sequence[Run], proposed: str | None) -> list[str]:
    """Baselines in the order they were configured, the proposed model last (as in the paper)."""
    order = list(dict.fromkeys(r.model for r in runs))
    return [m for m in order if m != proposed] + ([proposed] if proposed in order else [])


#: how Table 2 describes its reference rows (sgp4sr.report.bounds), shown beside the models, never marked
BOUND_NOTES = {
    "popularity": "Popularity ranks every user's candidates by their training interactions (a lower bound)",
    "oracle": "Oracle ranks by the demo generator's true next-item law given each user's true interests "
              "(an upper bound, near-exact: k-core removals are not modelled)",
}


def table2(runs: Sequence[Run], proposed: str | None, metrics: Sequence[str], significance_metric: str,
           decimals: int = 4) -> tuple[Table, pd.DataFrame]:
    """Models x (dataset, metric) with marks, improvement over the best baseline and the Wilcoxon p-value."""
    runs = [r for r in runs if r.variant == "default"]
    is_bound = [r.model in BOUNDS or bool(r.metrics.get("bound")) for r in runs]
    bound_runs = [r for r, bound in zip(runs, is_bound) if bound]
    runs = [r for r, bound in zip(runs, is_bound) if not bound]
    if not runs:
        raise ValueError("table2: no default runs given")
    order = _model_order(runs, proposed)
    present = {r.model for r in bound_runs}
    lower = [b for b in BOUNDS[:1] if b in present]
    upper = [b for b in BOUNDS[1:] if b in present]
    baselines = [m for m in order if m != proposed]
    summary = summarise(metric_frame(runs + bound_runs, metrics), ["dataset", "model", "metric"])
    has_improvement = proposed in order and bool(baselines)
    tests = _significance(runs, summary, proposed, baselines, significance_metric) if has_improvement else {}

    columns = ["Dataset", "Metric"] + [f"{display(b)}†" for b in lower] + [display(m) for m in order]
    columns += [f"{display(b)}†" for b in upper]
    if has_improvement:
        columns += ["Improv.", f"p ({display(significance_metric)})"]
    rows, numbers = [], []
    for ds in dict.fromkeys(r.dataset for r in runs):
        for metric in metrics:
            cell_stats = {m: _lookup(summary, ds, m, metric) for m in order}
            means = [cell_stats[m][0] for m in order]
            row = [Cell(ds), Cell(display(metric))]

            def bound_cells(names: list[str]) -> None:
                for b in names:
                    mean, std, n = _lookup(summary, ds, b, metric)
                    row.append(Cell("—" if n == 0 else fmt_mean_std(mean, std, decimals)))
                    if n:
                        numbers.append({"dataset": ds, "metric": metric, "model": b, "mean": mean, "std": std,
                                        "n_seeds": n, "mark": "", "bound": True})

            bound_cells(lower)
            first = len(numbers)  # this row's model records
            for m, mark in zip(order, marks(means, decimals)):
                mean, std, n = cell_stats[m]
                row.append(Cell(fmt_mean_std(mean, std, decimals), mark))
                numbers.append({"dataset": ds, "metric": metric, "model": m, "mean": mean, "std": std,
                                "n_seeds": n, "mark": mark})
            bound_cells(upper)
            if has_improvement:
                best_base, improvement = improvement_over_best(cell_stats, proposed, baselines)
                test = tests.get(ds, {}) if metric == significance_metric else {}
                row.append(Cell("—" if improvement is None else f"{improvement:+.2f}%"))
                row.append(Cell(_fmt_p(test.get("p_value")) if test else ""))
                for rec in numbers[first:first + len(order)]:
                    rec.update(best_baseline=best_base, improvement_pct=improvement,
                               p_value=test.get("p_value"), p_vs=test.get("baseline"),
                               n_users=test.get("n_users"), n_nonzero=test.get("n_nonzero"))
            rows.append(row)
    notes = ["Mean ± sample std over seeds; bold best, underlined second (on the shown values)."]
    if bound_runs:
        notes.append("† Reference rows, not models (never marked, never a baseline): "
                     + "; ".join(BOUND_NOTES[b] for b in BOUNDS if b in present) + ".")
    if has_improvement:
        notes.append(f"Improv.: ({display(proposed)} − best baseline) / best baseline, on the means. "
                     f"p: two-sided Wilcoxon signed-rank test over users of per-user {display(significance_metric)} "
                     f"(averaged over seeds) of {display(proposed)} vs the baseline with the best mean "
                     f"{display(significance_metric)}; users with equal scores are dropped.")
        for ds, test in tests.items():
            notes.append(f"{ds}: vs {display(test['baseline'])}, {test['n_nonzero']} of {test['n_users']} users differ.")
    notes += convergence_notes(runs)
    table = Table(columns, rows, "Table 2: overall performance", notes)
    return table, pd.DataFrame(numbers)


def _ended_at_cap(run: Run) -> bool:
    """The run used its whole epoch budget without early stopping (its validation metric may still rise)."""
    m = run.metrics
    try:
        return not m["stopped_early"] and int(m["epochs_run"]) >= int(m["config"]["training"]["epochs"])
    except (KeyError, TypeError, ValueError):  # bounds and older runs carry no training record
        return False


def convergence_notes(runs: Sequence[Run]) -> list[str]:
    """One warning per (dataset, model, variant) some of whose runs ended at the epoch cap, not by early stopping."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.dataset, run.model, run.variant), []).append(run)
    notes = []
    for (ds, model, variant), group in groups.items():
        capped = sorted((r for r in group if _ended_at_cap(r)), key=lambda r: r.seed)
        if capped:
            name = display(model) if variant == "default" else f"{display(model)} ({display(variant)})"
            cap = int(capped[0].metrics["config"]["training"]["epochs"])
            best = ", ".join(str(r.metrics.get("best_epoch")) for r in capped)
            notes.append(f"Not converged: {ds}, {name}: {len(capped)} of {len(group)} run(s) ended at the "
                         f"{cap}-epoch cap without early stopping (best epochs {best}): its validation metric "
                         f"may still have been rising.")
    return notes


def _lookup(summary: pd.DataFrame, ds: str, model: str, metric: str) -> tuple[float, float, int]:
    hit = summary[(summary.dataset == ds) & (summary.model == model) & (summary.metric == metric)]
    if hit.empty:
        return float("nan"), float("nan"), 0
    rec = hit.iloc[0]
    return float(rec["mean"]), float(rec["std"]), int(rec["n"])


def improvement_over_best(cell_stats: Mapping[str, tuple[float, float, int]], proposed: str,
                          baselines: Sequence[str]) -> tuple[str | None, float | None]:
    """(best baseline, relative improvement in %) on the means; None where undefined (no baseline, zero)."""
    scored = [(cell_stats[b][0], b) for b in baselines if not math.isnan(cell_stats[b][0])]
    if not scored:
        return None, None
    best_mean, best = max(scored)
    ours = cell_stats[proposed][0]
    if best_mean == 0 or math.isnan(ours):
        return best, None
    return best, (ours - best_mean) / best_mean * 100.0


def _fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _significance(runs: Sequence[Run], summary: pd.DataFrame, proposed: str, baselines: Sequence[str],
                  metric: str) -> dict[str, dict[str, Any]]:
    """Per dataset: Wilcoxon of the proposed model vs the baseline with the best mean ``metric``."""
    out = {}
    for ds in dict.fromkeys(r.dataset for r in runs):
        means = {b: _lookup(summary, ds, b, metric)[0] for b in baselines}
        means = {b: v for b, v in means.items() if not math.isnan(v)}
        if not means or math.isnan(_lookup(summary, ds, proposed, metric)[0]):
            continue
        best = max(means, key=means.get)
        scores = {}
        for model in (proposed, best):
            chosen = [r for r in runs if r.dataset == ds and r.model == model]
            missing = [str(r.ranks_path) for r in chosen if not Path(r.ranks_path).exists()]
            if missing:
                raise FileNotFoundError(f"ranks needed for the significance test are missing: {missing}")
            scores[model] = seed_averaged_user_metric([r.ranks_path for r in chosen], metric)
            check_against_mean(scores[model], _lookup(summary, ds, model, metric)[0], f"{ds}/{model}")
        out[ds] = {"baseline": best, **paired_wilcoxon(scores[proposed], scores[best])}
    return out


def table3(runs: Sequence[Run], proposed: str, variants: Sequence[str], metrics: Sequence[str],
           decimals: int = 4) -> tuple[Table, pd.DataFrame]:
    """The proposed model and its ablations (rows) x (dataset, metric), best and second marked per column."""
    runs = [r for r in runs if r.model == proposed and r.variant in variants]
    if not runs:
        raise ValueError(f"table3: no runs of '{proposed}' with variants {list(variants)}")
    summary = summarise(metric_frame(runs, metrics), ["dataset", "variant", "metric"])
    summary = summary.rename(columns={"variant": "model"})  # reuse _lookup's column name
    dsets = list(dict.fromkeys(r.dataset for r in runs))
    present = [v for v in variants if any(r.variant == v for r in runs)]
    columns = ["Variant"] + [f"{ds} {display(m)}" for ds in dsets for m in metrics]
    grid = {(v, ds, m): _lookup(summary, ds, v, m) for v in present for ds in dsets for m in metrics}
    column_marks = {(ds, m): dict(zip(present, marks([grid[(v, ds, m)][0] for v in present], decimals)))
                    for ds in dsets for m in metrics}
    rows, numbers = [], []
    for v in present:
        label = display(proposed) if v == "default" else display(v)
        row = [Cell(label)]
        for ds in dsets:
            for m in metrics:
                mean, std, n = grid[(v, ds, m)]
                mark = column_marks[(ds, m)][v]
                row.append(Cell(fmt_mean_std(mean, std, decimals), mark))
                full = grid[("default", ds, m)][0] if "default" in present else float("nan")
                change = (mean - full) / full * 100 if full and not math.isnan(full) else float("nan")
                numbers.append({"variant": v, "dataset": ds, "metric": m, "mean": mean, "std": std, "n_seeds": n,
                                "mark": mark, "change_vs_full_pct": change})
        rows.append(row)
    notes = ["Mean ± sample std over seeds; bold best, underlined second per column.", *convergence_notes(runs)]
    return Table(columns, rows, f"Table 3: ablation study of {display(proposed)}", notes), pd.DataFrame(numbers)
