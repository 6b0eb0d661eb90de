"""Config schema: both shipped configs validate; bad configs fail with messages a user can act on."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sgp4sr.config import (ConfigError, dataset_model, dataset_training, deep_merge, model_training_settings,
                           run_training_settings, validate_config)

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture
def default_config() -> dict:
    return load("config.yaml")


def paper_config() -> dict:
    # Snakemake merges --configfile over the Snakefile's configfile the same way.
    return deep_merge(load("config.yaml"), load("paper.yaml"))


def test_shipped_configs_are_valid(default_config):
    validate_config(default_config)
    validate_config(paper_config())
    validate_config(deep_merge(load("config.yaml"), load("ml100k.yaml")))


def test_unknown_key_is_named_with_suggestion(default_config):
    default_config["datasets"]["demo"]["kcor"] = 5
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    message = str(err.value)
    assert "datasets.demo" in message and "'kcor'" in message and "did you mean 'kcore'" in message


def test_wrong_type_names_key_and_value(default_config):
    default_config["training"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"training\.epochs: expected integer, got str 'ten'"):
        validate_config(default_config)


def test_selected_dataset_must_be_defined(default_config):
    default_config["run"]["datasets"] = ["demo", "babyy"]
    with pytest.raises(ConfigError, match=r"dataset 'babyy' is not defined.*defined: demo"):
        validate_config(default_config)


def test_amazon_source_requires_category(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["datasets"]["x"] = {"source": "amazon2014"}
    with pytest.raises(ConfigError, match="category"):
        validate_config(cfg)


def test_bad_enum_and_several_errors_reported_together(default_config):
    default_config["datasets"]["demo"]["source"] = "amazon2020"
    default_config["training"]["train_form"] = "twopass"
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    message = str(err.value)
    assert "'amazon2020' is not one of" in message
    assert "training.train_form" in message


def test_per_dataset_overrides_merge_without_touching_globals(default_config):
    default_config["datasets"]["demo"]["training"] = {"lr": 0.01}
    default_config["datasets"]["demo"]["models"] = {"sasrec": {"layers": 3}}
    assert dataset_training(default_config, "demo")["lr"] == 0.01
    assert dataset_training(default_config, "demo")["epochs"] == default_config["training"]["epochs"]
    assert dataset_model(default_config, "demo", "sasrec")["layers"] == 3
    assert default_config["models"]["sasrec"]["layers"] == 2


def test_unknown_model_is_named(default_config):
    default_config["run"]["models"] = ["sasrec", "sasrek"]
    with pytest.raises(ConfigError, match=r"unknown model 'sasrek' \(did you mean 'sasrec'\?\)"):
        validate_config(default_config)


def test_model_training_overrides_per_model_then_per_dataset(default_config):
    default_config["training"]["epochs"] = 10
    default_config["model_training"] = {"gru4rec": {"epochs": 60, "patience": 10}}
    default_config["datasets"]["demo"]["model_training"] = {"gru4rec": {"patience": 3}}
    validate_config(default_config)
    gru = run_training_settings(default_config, "demo", "gru4rec")
    assert (gru["epochs"], gru["patience"]) == (60, 3)
    assert run_training_settings(default_config, "demo", "sasrec")["epochs"] == 10
    assert model_training_settings(default_config, "gru4rec")["patience"] == 10  # no dataset level
    assert model_training_settings(default_config, "sasrec") == default_config["training"]
    default_config["model_training"] = {"gru4recc": {"epochs": 60}}
    with pytest.raises(ConfigError, match=r"model_training: unknown model 'gru4recc' \(did you mean 'gru4rec'\?\)"):
        validate_config(default_config)
    default_config["model_training"] = {"gru4rec": {"epoch": 60}}
    with pytest.raises(ConfigError, match="epoch"):
        validate_config(default_config)
