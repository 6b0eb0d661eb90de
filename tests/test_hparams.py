"""Plan-time checks of the models' hyper-parameters (sgp4sr.models.hparams), through validate_config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sgp4sr.config import ConfigError, deep_merge, validate_config
from sgp4sr.models.hparams import hparam_problems, model_signature, parse_signature
from sgp4sr.models.registry import _MODULES

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture
def demo() -> dict:
    cfg = load("config.yaml")
    assert "demo" in cfg["datasets"]
    return cfg


def problems_of(cfg: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    return str(err.value)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_every_shipped_config_passes(name):
    cfg = load(name) if name == "config.yaml" else deep_merge(load("config.yaml"), load(name))
    validate_config(cfg)  # the repository's schema
    assert hparam_problems(cfg) == []


def test_every_registered_model_has_a_parsed_signature():
    for model in _MODULES:
        sig = model_signature(model)
        assert sig is not None and "hidden_size" in sig.params and "ctx" not in sig.params, model


def test_signatures_are_read_without_importing_torch():
    code = ("import sys; from sgp4sr.models.hparams import model_signature; "
            "assert model_signature('sgp4sr').params['heads'].default == 4; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_misspelt_key_names_its_path_and_the_close_match(demo):
    demo["datasets"]["demo"].setdefault("models", {})["sgp4sr"] = {"hiden_size": 32}
    message = problems_of(demo)
    assert "datasets.demo.models.sgp4sr.hiden_size: unknown key (did you mean 'hidden_size'?)" in message
    assert message.count("\n  - ") == 1  # one problem, not every key


def test_dropout_out_of_range(demo):
    demo["models"]["sasrec"]["dropout"] = 1.5
    assert "models.sasrec.dropout: 1.5 is not a dropout rate in [0, 1)" in problems_of(demo)
    demo["models"]["sasrec"]["dropout"] = 1
    assert "models.sasrec.dropout: 1 is not a dropout rate in [0, 1)" in problems_of(demo)
    demo["models"]["sasrec"]["dropout"] = 0  # a YAML int is fine for a float
    validate_config(demo)


def test_wrong_types(demo):
    demo["models"]["sasrec"]["heads"] = "4"
    assert "models.sasrec.heads: expected int, got str '4'" in problems_of(demo)
    demo["models"]["sasrec"]["heads"] = True  # a bool is not an int
    assert "models.sasrec.heads: expected int, got bool True" in problems_of(demo)
    demo["models"]["sasrec"]["heads"] = 4
    demo["models"]["gru4rec"]["embedding_size"] = 3.5
    assert "models.gru4rec.embedding_size: expected int | None, got float 3.5" in problems_of(demo)
    demo["models"]["gru4rec"]["embedding_size"] = None
    demo["models"]["mmmlp"] = {"modalities": "text"}
    assert "models.mmmlp.modalities: expected Sequence[str], got str 'text'" in problems_of(demo)


def test_sizes_must_be_positive(demo):
    demo["models"]["sasrec"]["hidden_size"] = 0
    demo["models"]["gru4rec"]["layers"] = -1
    message = problems_of(demo)
    assert "models.sasrec.hidden_size: must be >= 1, got 0" in message
    assert "models.gru4rec.layers: must be >= 1, got -1" in message


def test_heads_must_divide_hidden_size_after_merging(demo):
    demo["models"]["sasrec"].update(hidden_size=64, heads=3)
    assert "models.sasrec: heads 3 does not divide hidden_size 64" in problems_of(demo)
    demo["models"]["sasrec"]["heads"] = 4
    # the dataset's override changes hidden_size only; the global heads 4 no longer divides it
    demo["datasets"]["demo"].setdefault("models", {})["sasrec"] = {"hidden_size": 30}
    assert "datasets.demo.models.sasrec: heads 4 does not divide hidden_size 30" in problems_of(demo)
    # a block that sets neither is checked against the model's defaults (sgp4sr: 300 / 4)
    del demo["models"]["sgp4sr"]
    del demo["datasets"]["demo"]["models"]["sasrec"]
    validate_config(demo)


def test_unknown_model_and_reserved_keys(demo):
    demo["models"]["sasrek"] = {"hidden_size": 8}
    assert "models.sasrek: unknown model (did you mean 'sasrec'?)" in problems_of(demo)
    del demo["models"]["sasrek"]
    demo["models"]["sgp4sr"]["ablations"] = ["wo_cip"]  # a run's variant sets them; a config value would vanish
    assert "models.sgp4sr.ablations: set by the run's variant" in problems_of(demo)


def test_pretraining_overrides_are_checked(demo):
    demo["pretraining"] = {"model_overrides": {"missrec": {"interest_ratioo": 0.1}}}
    assert ("pretraining.model_overrides.missrec.interest_ratioo: unknown key (did you mean 'interest_ratio'?)"
            in problems_of(demo))


def test_every_problem_is_reported_at_once(demo):
    demo["datasets"]["demo"].setdefault("models", {})["sgp4sr"] = {"hiden_size": 32, "dropout": 1.5, "heads": "4"}
    message = problems_of(demo)
    for where in ("hiden_size: unknown key", "dropout: 1.5 is not", "heads: expected int"):
        assert f"datasets.demo.models.sgp4sr.{where}" in message


def test_parse_signature_handles_keyword_only_optional_and_kwargs():
    source = '''
from typing import Optional
SIZE = 8
@register("toy")
class Toy(Base):
    def __init__(self, ctx, width: "int" = SIZE * 2, *, rate: Optional[float] = None, tags: tuple = (),
                 **extra) -> None:
        pass
'''
    sig = parse_signature(source, "toy")
    assert sig is not None and sig.open and sorted(sig.params) == ["rate", "tags", "width"]
    assert sig.params["width"].default == 16 and sig.params["width"].types == (int,)
    assert set(sig.params["rate"].types) == {float, int, type(None)} and sig.params["tags"].types == (list,)
    assert parse_signature(source, "other") is None
