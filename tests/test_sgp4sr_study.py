"""The SGP4SR study's points (benchmarks/sgp4sr_study.py): every one a valid run of the workflow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from sgp4sr.config import validate_config
from sgp4sr.engine.rules import TrainRules

ROOT = Path(__file__).resolve().parents[1]


def _study():
    spec = importlib.util.spec_from_file_location("sgp4sr_study", ROOT / "benchmarks" / "sgp4sr_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_points_cover_the_papers_text_and_grid_ends_and_plan_as_runs():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_config(config)
    points = _study().points(config, "demo")
    variants = [v for _, _, v in points]
    assert variants[0] == "default" and len(set(variants)) == len(variants)
    assert {"input_ln~true", "beta~1", "beta~1+input_ln~true", "alpha~0.5", "alpha~2"} <= set(variants)
    grid = config["experiments"]["tuning"]["grid"]
    for key, values in grid.items():  # each grid key at both ends, unless an end is the default
        ends = {f"{key}~{v:g}" for v in (min(values), max(values))}
        assert ends - {"H~10", "mu_o~0.3", "mu_m~2.5", "lr~0.001"} <= set(variants), key
    assert "H~10" not in variants  # the demo's default H: that point is `default`
    rules = TrainRules(config)
    for variant in variants:  # every point is a run Snakemake can plan
        plan = rules.plan("demo", "sgp4sr", variant)
        assert plan.params["model"]["hidden_size"] == config["models"]["sgp4sr"]["hidden_size"]
    assert rules.plan("demo", "sgp4sr", "input_ln~true").params["model"]["input_layernorm"] is True


def test_demo_long_overlay_trains_past_the_plateau():
    """config/demo-long.yaml over the default: patience 30 for every model, SGP4SR 80 epochs."""
    config = _study().load_config([ROOT / "config" / "config.yaml", ROOT / "config" / "demo-long.yaml"])
    rules = TrainRules(config)
    sgp = rules.plan("demo", "sgp4sr", "default").params["training"]
    sasrec = rules.plan("demo", "sasrec", "default").params["training"]
    assert (sgp["epochs"], sgp["patience"]) == (80, 30)
    assert (sasrec["epochs"], sasrec["patience"]) == (150, 30)


def test_demo_search_overlay_turns_the_search_on():
    """config/demo-search.yaml over the default: the search the default demo leaves off for its budget."""
    base = _study().load_config([ROOT / "config" / "config.yaml"])
    config = _study().load_config([ROOT / "config" / "config.yaml", ROOT / "config" / "demo-search.yaml"])
    assert base["experiments"]["tuning"]["enabled"] is False
    assert config["experiments"]["tuning"]["enabled"] is True
    assert config["experiments"]["tuning"]["subset"] == base["experiments"]["tuning"]["subset"]  # only the switch
