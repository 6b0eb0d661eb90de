"""Configuration: schema validation with readable errors, and per-dataset resolution.

Snakemake's own ``validate`` reports the first jsonschema error in the
schema's terms; users need the key path, what was wrong and what is allowed,
for every problem at once. That is what :func:`validate_config` adds.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any, Mapping

import yaml

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration does not satisfy the schema or refers to undefined names."""


def load_schema(path: str | Path | None = None) -> dict:
    path = Path(path) if path else DEFAULT_SCHEMA
    if not path.exists():
        raise ConfigError(f"config schema not found at {path}")
    return yaml.safe_load(path.read_text())


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _describe(error) -> str:
    """One line per jsonschema error: where, what, and what would be accepted."""
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hints = []
        for key in extra:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return f"{where}: unknown key {', '.join(hints)}; allowed keys: {', '.join(allowed)}"
    if error.validator == "type":
        return f"{where}: expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def validate_config(config: Mapping[str, Any], schema_path: str | Path | None = None) -> None:
    """Raise :class:`ConfigError` listing every schema violation and undefined name."""
    from jsonschema import Draft202012Validator

    schema = load_schema(schema_path)
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = []
    for error in errors:
        # Conditional (if/then) failures are reported through their sub-errors.
        leaves = list(error.context) if error.context else [error]
        problems.extend(_describe(leaf) for leaf in leaves)
    if not errors:
        problems.extend(_undefined_names(config))
        problems.extend(_pretraining_problems(config))
        from sgp4sr.models.hparams import hparam_problems  # parses the model modules; no torch import

        problems.extend(hparam_problems(config))
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(dict.fromkeys(problems)))


def _undefined_names(config: Mapping[str, Any]) -> list[str]:
    from sgp4sr.models.registry import REQUIRES  # static table: no torch import at parse time

    defined = sorted(config.get("datasets", {}))
    problems = []
    named = [("run.models", m) for m in config["run"].get("models", [])]
    named += [("model_training", m) for m in config.get("model_training", {})]
    named += [(f"datasets.{ds}.model_training", m) for ds, cfg in config.get("datasets", {}).items()
              for m in cfg.get("model_training", {})]
    for where, model in named:
        if model not in REQUIRES:
            close = difflib.get_close_matches(model, list(REQUIRES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where}: unknown model '{model}'{hint}; known: {', '.join(sorted(REQUIRES))}")
    for name in config["run"]["datasets"]:
        if name not in defined:
            close = difflib.get_close_matches(name, defined, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(
                f"run.datasets: dataset '{name}' is not defined under 'datasets'{hint}; defined: {', '.join(defined)}"
            )
    return problems


#: models with a cross-domain pre-training stage (sgp4sr.engine.pretrain)
PRETRAINABLE = ("missrec", "unisrec")


@functools.lru_cache(maxsize=None)
def _schema_defaults(schema_path: str, node: str) -> dict:
    schema = load_schema(schema_path)

    def resolve(spec: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in spec:  # only local "#/$defs/<name>" references occur in the schema
            target = schema["$defs"][spec["$ref"].rsplit("/", 1)[-1]]
            spec = {**target, **{k: v for k, v in spec.items() if k != "$ref"}}
        return spec

    def collect(spec: Mapping[str, Any]) -> dict:
        out = {}
        for key, sub in resolve(spec).get("properties", {}).items():
            sub = resolve(sub)
            if "default" in sub:
                out[key] = sub["default"]
            elif sub.get("type") == "object" and "properties" in sub:
                nested = collect(sub)
                if nested:
                    out[key] = nested
        return out

    if node == "":
        return collect(schema)
    if node not in schema.get("$defs", {}):
        raise ConfigError(f"{schema_path}: no $defs/{node} in the config schema")
    return collect(schema["$defs"][node])


def schema_defaults(node: str = "", schema_path: str | Path | None = None) -> dict:
    """The schema's ``default`` values under ``$defs/<node>`` (``""``: the top level), nested objects included.

    The schema is the one place a default is written down; code that needs one asks here.
    """
    return copy.deepcopy(_schema_defaults(str(schema_path or DEFAULT_SCHEMA), node))


def config_seed(config: Mapping[str, Any]) -> int:
    """The config's ``seed`` (the schema's default when absent)."""
    return int(config.get("seed", schema_defaults()["seed"]))


def pretraining_settings(config: Mapping[str, Any]) -> dict:
    """The ``pretraining`` block over its defaults (``model_overrides`` merge per model)."""
    return deep_merge(schema_defaults("pretraining"), config.get("pretraining"))


def pretraining_sources(config: Mapping[str, Any], target: str) -> list[str]:
    """Source datasets of ``target``, without the target: ``datasets.<target>.pretraining_sources`` when set,
    else ``pretraining.sources`` (null = ``run.datasets``). A checkpoint carries the feature adaptors, so a
    target's sources must have its feature widths: per-target sources let datasets of different encoders
    pre-train in one config."""
    own = config.get("datasets", {}).get(target, {}).get("pretraining_sources")
    pool = own if own is not None else pretraining_settings(config)["sources"]
    pool = config["run"]["datasets"] if pool is None else pool
    return [name for name in dict.fromkeys(pool) if name != target]


def pretrains(config: Mapping[str, Any], model: str, target: str) -> bool:
    """Whether ``model`` on ``target`` starts from cross-domain pre-trained weights."""
    return model in pretraining_settings(config)["models"] and bool(pretraining_sources(config, target))


def _pretraining_problems(config: Mapping[str, Any]) -> list[str]:
    """Pre-training needs a source dataset other than each target; sources must be defined."""
    settings = pretraining_settings(config)
    if not settings["models"]:
        return []
    defined = set(config.get("datasets", {}))
    named = [("pretraining.sources", name) for name in settings["sources"] or []]
    named += [(f"datasets.{ds}.pretraining_sources", name) for ds, cfg in config.get("datasets", {}).items()
              for name in cfg.get("pretraining_sources") or []]
    problems = [f"{where}: dataset '{name}' is not defined under 'datasets'; defined: {', '.join(sorted(defined))}"
                for where, name in named if name not in defined]
    targets = list(config["run"]["datasets"])
    everything = set(targets) | {name for _, name in named}
    if len(everything) < 2:
        problems.append(
            f"pretraining.models is {settings['models']} but only one dataset is configured "
            f"({', '.join(sorted(everything))}): cross-domain pre-training needs at least two datasets, the "
            "target and a source; add one to run.datasets or pretraining.sources, or set pretraining.models: []")
        return problems
    for target in targets:
        if not pretraining_sources(config, target):
            own = config["datasets"].get(target, {}).get("pretraining_sources")
            where = f"datasets.{target}.pretraining_sources" if own is not None else "pretraining.sources"
            problems.append(f"{where}: no source dataset left for target '{target}' "
                            f"(sources {own if own is not None else settings['sources']} without the target)")
    return problems


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (lists are replaced)."""
    merged = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def dataset_training(config: Mapping[str, Any], dataset: str) -> dict:
    """Engine settings for ``dataset``: global ``training`` overridden per dataset."""
    return deep_merge(config.get("training", {}), config["datasets"][dataset].get("training"))


def model_training_settings(config: Mapping[str, Any], model: str) -> dict:
    """Engine settings of ``model`` on no dataset in particular: ``training`` overridden by
    ``model_training.<model>`` (what a benchmark outside the workflow's datasets trains with)."""
    return deep_merge(config.get("training", {}), (config.get("model_training") or {}).get(model))


def run_training_settings(config: Mapping[str, Any], dataset: str, model: str) -> dict:
    """Engine settings of ``model``'s runs on ``dataset``, each later level overriding the earlier:
    ``training``, ``datasets.<ds>.training``, ``model_training.<model>``, ``datasets.<ds>.model_training.<model>``."""
    merged = dataset_training(config, dataset)
    merged = deep_merge(merged, (config.get("model_training") or {}).get(model))
    return deep_merge(merged, config["datasets"][dataset].get("model_training", {}).get(model))


def dataset_model(config: Mapping[str, Any], dataset: str, model: str) -> dict:
    """Hyper-parameters of ``model`` on ``dataset``: global ``models.<model>`` overridden per dataset."""
    base = config.get("models", {}).get(model, {})
    return deep_merge(base, config["datasets"][dataset].get("models", {}).get(model))
