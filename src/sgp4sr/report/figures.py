"""Figure 3 (robustness to image noise) and Figure 4 (number of interest centres).

The x value of every run comes from its variant (``fset~image@noise0.3`` ->
0.3, ``k~20`` -> 20, ``wo_cip`` -> k = 0, ``default`` -> the configured
default), so a figure shows exactly the runs it was given. Each figure is
written as PNG and PDF together with the CSV of the plotted means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import pandas as pd  # noqa: E402

from sgp4sr.io import atomic_path  # noqa: E402
from sgp4sr.layout import noise_of  # noqa: E402
from sgp4sr.report.render import display  # noqa: E402
from sgp4sr.report.runs import Run, metric_frame, summarise  # noqa: E402
from sgp4sr.variants import parse_variant  # noqa: E402

FIGURE_METRICS = ("recall@10", "ndcg@10")


def noise_ratio(variant: str, modality: str) -> float:
    """The noise ratio of ``modality`` a variant trains with (0 for clean features)."""
    parsed = parse_variant(variant)
    if parsed.ablations or set(parsed.params) - {"fset"}:
        raise ValueError(f"variant '{variant}' is not a pure noise variant")
    try:
        noise = noise_of(parsed.fset)
    except ValueError:
        noise = ("", 0.0)
    if noise is None:
        return 0.0
    if noise[0] != modality:
        raise ValueError(f"variant '{variant}': expected feature set '{modality}@noise<ratio>'")
    return noise[1]


def centre_count(variant: str, default_k: int | None) -> int:
    """The number of centres of a run: ``k~N`` -> N, ``wo_cip`` -> 0, ``default`` -> ``default_k``."""
    parsed = parse_variant(variant)
    if set(parsed.ablations) - {"wo_cip"} or set(parsed.params) - {"k"}:
        raise ValueError(f"variant '{variant}' is not a centre-count variant")
    if parsed.ablations:
        return 0
    if "k" in parsed.params:
        return int(parsed.params["k"])
    if default_k is None:
        raise ValueError(f"variant '{variant}': the dataset's default number of centres is not configured")
    return int(default_k)


def _xy_frame(runs: Sequence[Run], x_name: str, x_of) -> pd.DataFrame:
    frame = metric_frame(runs, FIGURE_METRICS)
    frame[x_name] = [x_of(r) for r in frame.itertuples()]
    return summarise(frame, ["dataset", "model", x_name, "metric"]).sort_values(["dataset", "model", x_name])


def noise_frame(runs: Sequence[Run], modality: str) -> pd.DataFrame:
    return _xy_frame(runs, "ratio", lambda r: noise_ratio(r.variant, modality))


def centre_frame(runs: Sequence[Run], default_k: Mapping[str, int | None]) -> pd.DataFrame:
    return _xy_frame(runs, "k", lambda r: centre_count(r.variant, default_k.get(r.dataset)))


def _line(ax, data: pd.DataFrame, x: str, label: str, **style) -> None:
    err = data["std"].fillna(0.0) if data["n"].max() > 1 else None
    ax.errorbar(data[x], data["mean"], yerr=err, marker="o", capsize=3, label=label, **style)


def _save(fig, prefix: Path) -> list[Path]:
    paths = []
    for suffix in ("png", "pdf"):
        path = prefix.with_name(f"{prefix.name}.{suffix}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _write_csv(frame: pd.DataFrame, prefix: Path) -> Path:
    path = prefix.with_name(f"{prefix.name}.csv")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def figure_noise(frame: pd.DataFrame, proposed: str, modality: str, prefix: str | Path) -> list[Path]:
    """One row per dataset, Recall@10 and NDCG@10 against the noise ratio; the second axis is
    the proposed model's score divided by the strongest baseline's at each ratio."""
    prefix = Path(prefix)
    dsets = list(dict.fromkeys(frame["dataset"]))
    fig, axes = plt.subplots(len(dsets), len(FIGURE_METRICS), figsize=(5.2 * len(FIGURE_METRICS), 3.6 * len(dsets)),
                             squeeze=False)
    ratio_rows = []
    handles: dict[str, Any] = {}
    for i, ds in enumerate(dsets):
        for j, metric in enumerate(FIGURE_METRICS):
            ax = axes[i][j]
            data = frame[(frame.dataset == ds) & (frame.metric == metric)]
            for model in dict.fromkeys(data["model"]):
                _line(ax, data[data.model == model], "ratio", display(model))
            wide = data.pivot(index="ratio", columns="model", values="mean")
            baselines = [m for m in wide.columns if m != proposed]
            if proposed in wide.columns and baselines:
                best = wide[baselines].max(axis=1)
                ratio = wide[proposed] / best
                twin = ax.twinx()
                twin.plot(ratio.index, ratio.values, color="grey", linestyle="--", marker="x",
                          label=f"{display(proposed)} / best baseline (right axis)")
                twin.axhline(1.0, color="grey", linewidth=0.6, linestyle=":")
                twin.set_ylabel(f"{display(proposed)} {display(metric)} / best baseline's", color="grey")
                twin.tick_params(axis="y", colors="grey")
                handles.update(zip(*reversed(twin.get_legend_handles_labels())))
                ratio_rows += [{"dataset": ds, "metric": metric, "ratio": r, "model": "ratio_to_best_baseline",
                                "mean": v, "std": float("nan"), "n": 0} for r, v in ratio.items()]
            handles.update(zip(*reversed(ax.get_legend_handles_labels())))
            ax.set_title(f"{ds}: {display(metric)}")
            ax.set_xlabel(f"share of items with noisy {modality} features")
            ax.set_ylabel(display(metric))
            ax.set_xticks(sorted(data["ratio"].unique()))
    fig.suptitle(f"Robustness to {modality} noise")
    fig.tight_layout()
    _legend_below(fig, handles)
    out = _save(fig, prefix)
    return out + [_write_csv(pd.concat([frame, pd.DataFrame(ratio_rows)], ignore_index=True), prefix)]


def _legend_below(fig, handles: Mapping[str, Any]) -> None:
    """One legend for the whole figure, under the panels, so that no entry covers a data point."""
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=min(4, len(handles)),
                   fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))


def figure_centres(frame: pd.DataFrame, proposed: str, prefix: str | Path) -> list[Path]:
    """One panel per dataset: Recall@10 (left axis) and NDCG@10 (right axis) against ``k`` (0 = w/o CIP)."""
    prefix = Path(prefix)
    frame = frame[frame.model == proposed]
    dsets = list(dict.fromkeys(frame["dataset"]))
    fig, axes = plt.subplots(1, len(dsets), figsize=(5.2 * len(dsets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], dsets):
        data = frame[frame.dataset == ds]
        _line(ax, data[data.metric == "recall@10"], "k", "Recall@10", color="tab:blue")
        ax.set_ylabel("Recall@10", color="tab:blue")
        twin = ax.twinx()
        _line(twin, data[data.metric == "ndcg@10"], "k", "NDCG@10", color="tab:orange")
        twin.set_ylabel("NDCG@10", color="tab:orange")
        ax.set_xlabel("number of interest centres k (0 = w/o CIP)")
        ax.set_xticks(sorted(data["k"].unique()))
        ax.set_title(f"{ds}: {display(proposed)}")
    fig.tight_layout()
    return _save(fig, prefix) + [_write_csv(frame, prefix)]
