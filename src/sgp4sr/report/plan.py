"""Which runs each experiment needs, derived from the config alone.

The Snakemake rules (``workflow/rules/report.smk``) and the target list of
``all`` call these functions, so what is trained and what is reported cannot
drift apart, and the planning is unit-tested without Snakemake. Nothing here
reads a result file.

Run variants are canonical (:func:`canonical_variant`): a token whose value
equals the dataset's configured default is dropped, so the noise ratio 0, the
default ``k`` and a grid point at the defaults reuse the ``default`` runs of
Table 2 instead of training the same model twice under two names.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from sgp4sr import layout
from sgp4sr.config import deep_merge, schema_defaults
from sgp4sr.layout import REPORT_DIR, run_dir
from sgp4sr.variants import KEYS, format_variant

#: Table 2's reference rows, not models (sgp4sr.report.bounds computes them, rule ``bound``)
BOUNDS = ("popularity", "oracle")

# variant key -> (config section, key there) holding the dataset's default
_DEFAULT_SOURCE = {"lr": ("training", "lr"), "wd": ("training", "weight_decay"), "H": ("graphs", "knn_k"),
                   "mu_m": ("graphs", "mu_m"), "mu_o": ("graphs", "mu_o"), "k": ("graphs", "centres")}


def experiments(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``experiments`` section with the schema's defaults filled in.

    Lists are replaced, not merged; so are the search ``grid`` and ``subset``
    (a user's subset over other keys must not inherit the default's keys).
    """
    given = config.get("experiments") or {}
    merged = deep_merge(schema_defaults("experiments"), given)
    for key in ("grid", "subset"):
        if key in given.get("tuning", {}):
            merged["tuning"][key] = given["tuning"][key]
    return merged


def datasets(config: Mapping[str, Any]) -> list[str]:
    return list(config["run"]["datasets"])


def models(config: Mapping[str, Any]) -> list[str]:
    return list(config["run"].get("models", []))


def seeds(config: Mapping[str, Any]) -> list[int]:
    return [int(s) for s in config["run"].get("seeds", [1])]


def proposed(config: Mapping[str, Any]) -> str | None:
    """The model Tables 2-3 and the figures are about, or None when it is not among ``run.models``."""
    name = experiments(config)["proposed"]
    return name if name in models(config) else None


def dataset_defaults(config: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """Variant key -> the value a ``default`` run uses, for the keys the config sets explicitly."""
    ds_cfg = config["datasets"][dataset]
    sections = {"training": deep_merge(config.get("training", {}), ds_cfg.get("training")),
                "graphs": ds_cfg.get("graphs", {})}
    out: dict[str, Any] = {"fset": layout.CLEAN}
    for key, (section, name) in _DEFAULT_SOURCE.items():
        if name in sections[section]:
            out[key] = KEYS[key][1](sections[section][name])
    return out


def canonical_variant(config: Mapping[str, Any], dataset: str, ablations: tuple[str, ...] | list[str] = (),
                      **params: Any) -> str:
    """The variant string of a run, without tokens that repeat the dataset's defaults.

    ``k=0`` means no interest centres at all, i.e. the ``wo_cip`` ablation.
    """
    ablations = list(ablations)
    if "k" in params and int(params["k"]) == 0:
        params.pop("k")
        ablations.append("wo_cip")
    defaults = dataset_defaults(config, dataset)
    kept = {k: v for k, v in params.items() if v is not None and not _same(defaults.get(k), v)}
    return format_variant(tuple(dict.fromkeys(ablations)), **kept)


def _same(default: Any, value: Any) -> bool:
    if default is None:
        return False
    if isinstance(default, str) or isinstance(value, str):
        return str(default) == str(value)
    return float(default) == float(value)


def run_files(runs: list[tuple[str, str, str, int]], ranks: bool = False) -> list[str]:
    """``metrics.json`` (and ``ranks.parquet``) paths of ``(dataset, model, variant, seed)`` runs, unique."""
    files = []
    for run in runs:
        files.append(f"{run_dir(*run)}/metrics.json")
        if ranks:
            files.append(f"{run_dir(*run)}/ranks.parquet")
    return list(dict.fromkeys(files))


def table2_runs(config: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(ds, m, "default", s) for ds in datasets(config) for m in models(config) for s in seeds(config)]


def bound_runs(config: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    """Table 2's reference rows (sgp4sr.report.bounds): popularity on every dataset, the oracle on generated ones."""
    if not experiments(config)["bounds"] or not models(config):
        return []
    popularity, oracle = BOUNDS
    runs = []
    for ds in datasets(config):
        runs.append((ds, popularity, "default", 1))
        if config["datasets"][ds]["source"] == "demo":
            runs.append((ds, oracle, "default", 1))
    return runs


def table3_runs(config: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    model = proposed(config)
    if model is None:
        return []
    variants = ["default"] + [format_variant((a,)) for a in config["run"].get("ablations", [])]
    chosen = experiments(config).get("ablation_seeds")
    run_seeds = [int(s) for s in chosen] if chosen else seeds(config)
    return [(ds, model, v, s) for ds in datasets(config) for v in variants for s in run_seeds]


def _figure_seeds(config: Mapping[str, Any], section: str) -> list[int]:
    chosen = experiments(config)[section].get("seeds")
    return [int(s) for s in chosen] if chosen else seeds(config)[:1]


def noise_ratios(config: Mapping[str, Any], dataset: str) -> list[float]:
    """Figure 3's x axis: 0 (clean features) and the dataset's ``noise_ratios``, else the experiment's."""
    ratios = config["datasets"][dataset].get("noise_ratios") or experiments(config)["noise"]["ratios"]
    return sorted({0.0, *(float(r) for r in ratios)})


def noise_models(config: Mapping[str, Any]) -> list[str]:
    """The proposed model first, then the configured baselines that are also in ``run.models``."""
    model = proposed(config)
    if model is None:
        return []
    return [model] + [b for b in experiments(config)["noise"]["baselines"] if b in models(config) and b != model]


def noise_variant(config: Mapping[str, Any], dataset: str, ratio: float) -> str:
    modality = experiments(config)["noise"]["modality"]
    fset = layout.CLEAN if float(ratio) == 0 else layout.noisy_fset(modality, ratio)
    return canonical_variant(config, dataset, fset=fset)


def noise_runs(config: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    """Every (model, ratio, seed) of Figure 3 on the datasets that have the noisy modality."""
    exp = experiments(config)["noise"]
    if not exp["enabled"]:
        return []
    noisy = [ds for ds in datasets(config) if exp["modality"] in config["datasets"][ds].get("modalities", {})]
    return [(ds, m, noise_variant(config, ds, r), s) for ds in noisy for m in noise_models(config)
            for r in noise_ratios(config, ds) for s in _figure_seeds(config, "noise")]


def centre_runs(config: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    model = proposed(config)
    if model is None or not experiments(config)["centres"]["enabled"]:
        return []
    ks = experiments(config)["centres"]["k"]
    return [(ds, model, canonical_variant(config, ds, k=int(k)), s) for ds in datasets(config) for k in ks
            for s in _figure_seeds(config, "centres")]


def centre_default_k(config: Mapping[str, Any], dataset: str) -> int | None:
    """The ``k`` of a ``default`` run (Figure 4 places those runs there); None if the config leaves it unset."""
    value = dataset_defaults(config, dataset).get("k")
    return None if value is None else int(value)


def tuning_model(config: Mapping[str, Any]) -> str | None:
    cfg = experiments(config)["tuning"]
    return cfg["model"] if cfg["enabled"] and cfg["model"] in models(config) else None


def tuning_seed(config: Mapping[str, Any]) -> int:
    chosen = experiments(config)["tuning"].get("seed")
    return int(chosen) if chosen is not None else seeds(config)[0]


def tuning_space(config: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The searched values per key: the ``subset`` when given, else the paper's whole ``grid``."""
    cfg = experiments(config)["tuning"]
    space = cfg.get("subset") or cfg["grid"]
    unknown = sorted(set(space) - (set(KEYS) - {"fset"}))
    if unknown:
        raise ValueError(f"experiments.tuning: cannot search over {unknown}; keys: lr, wd, H, mu_m, mu_o, k")
    return {key: list(values) for key, values in space.items()}


def tuning_points(config: Mapping[str, Any], dataset: str) -> list[str]:
    """Every grid point as a canonical variant, in grid order (the order breaks ties in selection)."""
    space = tuning_space(config)
    keys = list(space)
    points = [canonical_variant(config, dataset, **dict(zip(keys, values)))
              for values in itertools.product(*(space[k] for k in keys))]
    return list(dict.fromkeys(points))


def tuning_grid_runs(config: Mapping[str, Any], dataset: str) -> list[tuple[str, str, str, int]]:
    model = tuning_model(config)
    if model is None:
        return []
    return [(dataset, model, v, tuning_seed(config)) for v in tuning_points(config, dataset)]


def tuned_runs(config: Mapping[str, Any], dataset: str, variant: str) -> list[tuple[str, str, str, int]]:
    """The chosen point over all seeds, plus the default runs it is compared with."""
    model = tuning_model(config)
    if model is None:
        return []
    return [(dataset, model, v, s) for v in dict.fromkeys([variant, "default"]) for s in seeds(config)]


def _outputs(stem: str, suffixes: tuple[str, ...]) -> list[str]:
    return [f"{REPORT_DIR}/{stem}.{suffix}" for suffix in suffixes]


TABLE_SUFFIXES = ("csv", "md", "tex", "html")
FIGURE_SUFFIXES = ("png", "pdf", "csv")


def report_targets(config: Mapping[str, Any]) -> list[str]:
    """Every report file that the config asks for (what ``all`` builds beyond the runs)."""
    exp = experiments(config)
    targets: list[str] = []
    if "table1" in exp["tables"]:
        targets += _outputs("table1_stats", TABLE_SUFFIXES)
    if "table2" in exp["tables"] and models(config):
        targets += _outputs("table2_overall", TABLE_SUFFIXES)
    if "table3" in exp["tables"] and table3_runs(config):
        targets += _outputs("table3_ablation", TABLE_SUFFIXES)
    if noise_runs(config):
        targets += _outputs("figure3_noise", FIGURE_SUFFIXES)
    if centre_runs(config):
        targets += _outputs("figure4_centres", FIGURE_SUFFIXES)
    if tuning_model(config):
        targets += _outputs("tuning", TABLE_SUFFIXES)
        targets += [f"{REPORT_DIR}/tuning/{ds}/grid.csv" for ds in datasets(config)]
    return targets
