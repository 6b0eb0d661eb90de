"""Selection on validation only, the tuning table, and the planned grid."""

from __future__ import annotations

import pandas as pd
import pytest

from sgp4sr.cli.main import main
from sgp4sr.io import read_json
from sgp4sr.report.runs import load_runs
from sgp4sr.report.tuning import select, tuning_table
from report_fixtures import write_run

DEFAULTS = {"lr": 0.001, "H": 10, "mu_m": 2.5, "mu_o": 0.3, "k": 20}


def _grid(tmp_path):
    """Validation prefers lr~0.005; the test split would prefer mu_o~0.1 (it must not be chosen)."""
    points = {"default": (0.20, 0.30), "lr~0.005": (0.35, 0.10), "mu_o~0.1": (0.25, 0.90),
              "lr~0.005+mu_o~0.1": (0.35, 0.95)}
    return [write_run(tmp_path, "demo", "sgp4sr", v, 1, valid={"recall@5": val, "ndcg@10": val / 2},
                      test={"recall@5": test, "recall@10": test, "ndcg@10": test / 2})
            for v, (val, test) in points.items()]


def test_selection_uses_validation_not_test(tmp_path):
    selected, grid = select(load_runs(_grid(tmp_path)), "recall@5", DEFAULTS)
    # lr~0.005 and lr~0.005+mu_o~0.1 tie on validation: the earlier grid point wins, test is ignored
    assert selected["variant"] == "lr~0.005"
    assert selected["values"] == {"lr": 0.005, "wd": None, "H": 10, "mu_m": 2.5, "mu_o": 0.3, "k": 20}
    assert grid.selected.tolist() == [False, True, False, False]
    assert not any(c.startswith("test") for c in grid.columns)
    assert grid.loc[grid.variant == "mu_o~0.1", "valid_recall@5"].iloc[0] == pytest.approx(0.25)


def test_selection_ignores_test_block_entirely(tmp_path):
    paths = _grid(tmp_path)
    runs = load_runs(paths)
    for run in runs:
        del run.metrics["test"]
    assert select(runs, "recall@5", DEFAULTS)[0]["variant"] == "lr~0.005"


def test_selection_rejects_mixed_runs(tmp_path):
    paths = _grid(tmp_path) + [write_run(tmp_path, "other", "sgp4sr", "default", 1, valid={"recall@5": 1.0})]
    with pytest.raises(ValueError, match="several datasets"):
        select(load_runs(paths), "recall@5", DEFAULTS)


def test_cli_select_then_table(tmp_path):
    paths = _grid(tmp_path)
    out = tmp_path / "report" / "tuning" / "demo"
    assert main(["report", "tuning-select", "--runs", *map(str, paths), "--metric", "recall@5",
                 "--defaults", '{"lr": 0.001, "H": 10, "mu_m": 2.5, "mu_o": 0.3, "k": 20}',
                 "--out", str(out / "selected.json"), "--grid-out", str(out / "grid.csv")]) == 0
    assert read_json(out / "selected.json")["variant"] == "lr~0.005"
    assert len(pd.read_csv(out / "grid.csv")) == 4
    retrained = [write_run(tmp_path, "demo", "sgp4sr", "lr~0.005", s, valid={"recall@5": 0.3},
                           test={"recall@10": 0.1 * s, "ndcg@10": 0.05 * s}) for s in (2, 3)]
    table, numbers = tuning_table([read_json(out / "selected.json")], load_runs(paths[:2] + retrained),
                                  ["recall@10", "ndcg@10"])
    assert [r[1].text for r in table.rows] == ["selected (lr~0.005)", "default (default)"]
    sel = numbers.query("configuration == 'selected' and metric == 'recall@10'").iloc[0]
    assert sel.n_seeds == 3 and sel.test_mean == pytest.approx((0.10 + 0.2 + 0.3) / 3) and sel.lr == 0.005
