"""Variant strings: canonical, parseable, and mapped onto graph/training settings."""

from __future__ import annotations

import pytest

from sgp4sr.variants import format_variant, parse_variant


def test_default_round_trip():
    assert format_variant() == "default"
    assert parse_variant("default").ablations == ()
    assert parse_variant("default").fset == "clean"


def test_canonical_order_makes_one_job_per_run():
    a = format_variant(["wo_cip", "wo_cgc"], k=20, lr=0.0005)
    b = format_variant(["wo_cgc", "wo_cip"], lr=5e-4, k=20)
    assert a == b == "wo_cgc+wo_cip+lr~0.0005+k~20"
    parsed = parse_variant(a)
    assert parsed.ablations == ("wo_cgc", "wo_cip")
    assert parsed.params == {"lr": 0.0005, "k": 20}


def test_graph_settings_and_wo_coo():
    base = {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.3, "centres": 50}
    assert parse_variant("wo_coo").graph_settings(base)["mu_o"] == 0.0
    settings = parse_variant("H~5+k~0").graph_settings(base)
    assert settings == {"knn_k": 5, "mu_m": 2.5, "mu_o": 0.3, "centres": 0}
    assert base["knn_k"] == 10  # not mutated


def test_fset_and_training_overrides():
    v = parse_variant("fset~image@noise0.3+lr~0.01+wd~0.0001")
    assert v.fset == "image@noise0.3"
    assert v.training_overrides() == {"lr": 0.01, "weight_decay": 0.0001}


@pytest.mark.parametrize("bad", ["wo_foo", "k=20", "depth~3", "k~twenty"])
def test_bad_tokens_are_named(bad):
    with pytest.raises(ValueError, match="bad"):
        parse_variant(bad)
