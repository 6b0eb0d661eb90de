"""Configuration: schema validation with readable errors, and per-dataset resolution.

Snakemake's own ``validate`` reports the first jsonschema error in the
schema's terms; users need the key path, what was wrong and what is allowed,
for every problem at once. That is what :func:`validate_config` adds.
"""

from __future__ import annotations

import copy
import difflib
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
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(dict.fromkeys(problems)))


def _undefined_names(config: Mapping[str, Any]) -> list[str]:
    from sgp4sr.models.registry import REQUIRES  # static table: no torch import at parse time

    defined = sorted(config.get("datasets", {}))
    problems = []
    for model in config["run"].get("models", []):
        if model not in REQUIRES:
            close = difflib.get_close_matches(model, list(REQUIRES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"run.models: unknown model '{model}'{hint}; known: {', '.join(sorted(REQUIRES))}")
    for name in config["run"]["datasets"]:
        if name not in defined:
            close = difflib.get_close_matches(name, defined, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(
                f"run.datasets: dataset '{name}' is not defined under 'datasets'{hint}; defined: {', '.join(defined)}"
            )
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


def dataset_model(config: Mapping[str, Any], dataset: str, model: str) -> dict:
    """Hyper-parameters of ``model`` on ``dataset``: global ``models.<model>`` overridden per dataset."""
    base = config.get("models", {}).get(model, {})
    return deep_merge(base, config["datasets"][dataset].get("models", {}).get(model))
