"""Tables 1-3 on made-up runs: marks, improvement, escaping, and the files written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sgp4sr.cli.main import main
from sgp4sr.io import write_json
from sgp4sr.report.render import Cell, Table, latex_escape, marks, to_latex, to_markdown
from sgp4sr.report.runs import load_run, load_runs
from sgp4sr.report.tables import table1, table2, table3
from report_fixtures import ranks_with_quality, write_run

METRICS = ["recall@10", "ndcg@10"]


def _fixed(value: float) -> dict:
    return {"recall@10": value, "ndcg@10": value / 2, "recall@50": value * 2, "ndcg@50": value}


@pytest.fixture
def overall(tmp_path):
    """Three models x two seeds; means: sasrec 0.20, gru4rec 0.10, sgp4sr 0.25 (recall@10)."""
    paths = []
    for seed, delta in ((1, -0.01), (2, 0.01)):
        for model, base in (("sasrec", 0.20), ("gru4rec", 0.10), ("sgp4sr", 0.25)):
            paths.append(write_run(tmp_path, "demo", model, "default", seed, test=_fixed(base + delta)))
    return load_runs(paths)


def test_marks_best_and_second_on_shown_values():
    assert marks([0.3, 0.1, 0.2]) == ["best", "", "second"]
    # equal after rounding -> both best; the next distinct value is second
    assert marks([0.30001, 0.30004, 0.2, float("nan")]) == ["best", "best", "second", ""]


def test_table2_marks_improvement_and_spread(overall, monkeypatch):
    monkeypatch.setattr("sgp4sr.report.tables._significance", lambda *a, **k: {})  # no ranks in this fixture
    table, numbers = table2(overall, "sgp4sr", METRICS, "ndcg@10")
    assert table.columns[:5] == ["Dataset", "Metric", "SASRec", "GRU4Rec", "SGP4SR"]
    recall_row = table.rows[0]
    assert recall_row[4] == Cell("0.2500 ± 0.0141", "best")
    assert recall_row[2].mark == "second" and recall_row[3].mark == ""
    assert recall_row[5].text == "+25.00%"  # (0.25 - 0.20) / 0.20, on the means
    rec = numbers[(numbers.model == "sgp4sr") & (numbers.metric == "recall@10")].iloc[0]
    assert rec.best_baseline == "sasrec" and rec.improvement_pct == pytest.approx(25.0)
    assert rec.n_seeds == 2 and rec["std"] == pytest.approx(np.std([0.24, 0.26], ddof=1))


def test_table2_without_proposed_has_no_improvement(overall):
    table, _ = table2([r for r in overall if r.model != "sgp4sr"], "sgp4sr", METRICS, "ndcg@10")
    assert "Improv." not in table.columns and len(table.columns) == 4


def test_table2_runs_wilcoxon_on_ranks(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for seed in (1, 2):
        paths.append(write_run(tmp_path, "demo", "sgp4sr", "default", seed, test_rank=ranks_with_quality(rng, 400, 0.6)))
        paths.append(write_run(tmp_path, "demo", "sasrec", "default", seed, test_rank=ranks_with_quality(rng, 400, 0.3)))
        paths.append(write_run(tmp_path, "demo", "gru4rec", "default", seed, test_rank=ranks_with_quality(rng, 400, 0.1)))
    table, numbers = table2(load_runs(paths), "sgp4sr", METRICS, "ndcg@10")
    ndcg = numbers[(numbers.metric == "ndcg@10") & (numbers.model == "sgp4sr")].iloc[0]
    assert ndcg.p_vs == "sasrec" and ndcg.p_value < 1e-6 and ndcg.n_users == 400
    assert numbers[numbers.metric == "recall@10"].p_value.isna().all()  # p only on the tested metric
    assert table.rows[1][-1].text.endswith(tuple("0123456789")) and table.rows[0][-1].text == ""


def test_latex_escapes_specials_and_marks():
    assert latex_escape("wo_coo & 5% #1 {x} ~ ^ \\") == (
        r"wo\_coo \& 5\% \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{}")
    tex = to_latex(Table(["Model", "R@10"], [[Cell("w/o_COO"), Cell("0.1 ± 0.0", "best")],
                                             [Cell("a&b"), Cell("+5.00%", "second")]]))
    assert r"\textbf{0.1 $\pm$ 0.0}" in tex and r"\underline{+5.00\%}" in tex
    assert r"w/o\_COO" in tex and r"a\&b" in tex and "±" not in tex
    assert latex_escape("a − b") == "a $-$ b"


def test_markdown_bold_underline_and_pipe_escape():
    md = to_markdown(Table(["a|b", "c"], [[Cell("x_y", "best"), Cell("z", "second")]]))
    assert "a\\|b" in md and "**x\\_y**" in md and "<u>z</u>" in md


def test_table1_with_paper_stats():
    stats = {"baby": {"users": 19445, "items": 7050, "interactions": 160792, "avg_length": 8.27,
                      "sparsity": 0.9988}, "demo": {"users": 10, "items": 5, "interactions": 30,
                                                    "avg_length": 3.0, "sparsity": 0.4}}
    table, numbers = table1(stats, {"baby": {"users": 19445, "items": 7050}})
    assert "#Users (paper)" in table.columns and "#Interactions (paper)" not in table.columns
    assert [c.text for c in table.rows[0][:3]] == ["baby", "19,445", "19,445"]
    assert table.rows[1][2].text == "—" and table.rows[0][-1].text == "99.88%"
    assert numbers.query("dataset == 'demo' and statistic == 'users'").paper.isna().all()
    with pytest.raises(KeyError, match="stats of 'x' lack"):
        table1({"x": {"users": 1}}, {})


def test_table3_rows_and_column_marks(tmp_path):
    paths = [write_run(tmp_path, "demo", "sgp4sr", v, 1, test=_fixed(x))
             for v, x in (("default", 0.3), ("wo_coo", 0.2), ("wo_cip", 0.25), ("wo_c2c", 0.1))]
    table, numbers = table3(load_runs(paths), "sgp4sr", ["default", "wo_coo", "wo_cgc", "wo_cip", "wo_c2c"], METRICS)
    assert [r[0].text for r in table.rows] == ["SGP4SR", "w/o COO", "w/o CIP", "w/o C2C"]  # missing wo_cgc skipped
    assert [r[1].mark for r in table.rows] == ["best", "", "second", ""]
    change = numbers.query("variant == 'wo_coo' and metric == 'recall@10'").change_vs_full_pct.iloc[0]
    assert change == pytest.approx(-100 / 3)


def test_bad_run_path_and_missing_metric_are_clear(tmp_path):
    bad = tmp_path / "metrics.json"
    write_json(bad, {"test": {}})
    with pytest.raises(ValueError, match="not a run's metrics file"):
        load_run(bad)
    run = load_run(write_run(tmp_path, "demo", "sasrec", "default", 1, test={"recall@10": 0.1}))
    with pytest.raises(KeyError, match="no 'ndcg@10' in 'test'.*seed1/metrics.json|seed1/metrics.json.*ndcg@10"):
        run.value("test", "ndcg@10")


def test_cli_writes_all_formats(overall, tmp_path, monkeypatch):
    monkeypatch.setattr("sgp4sr.report.tables._significance", lambda *a, **k: {})
    prefix = tmp_path / "report" / "table2_overall"
    rc = main(["report", "table2", "--runs", *[str(r.path) for r in overall], "--out-prefix", str(prefix),
               "--metrics", *METRICS])
    assert rc == 0
    for suffix in (".csv", ".md", ".tex", ".html"):
        assert (prefix.parent / (prefix.name + suffix)).stat().st_size > 0
    assert len(pd.read_csv(f"{prefix}.csv")) == 6


def test_table2_shows_bounds_beside_the_models_never_as_one(overall, tmp_path, monkeypatch):
    monkeypatch.setattr("sgp4sr.report.tables._significance", lambda *a, **k: {})
    bounds = load_runs([write_run(tmp_path, "demo", "popularity", "default", 1, test=_fixed(0.05)),
                        write_run(tmp_path, "demo", "oracle", "default", 1, test=_fixed(0.60))])
    table, numbers = table2(list(overall) + bounds, "sgp4sr", METRICS, "ndcg@10")
    assert table.columns[:7] == ["Dataset", "Metric", "Popularity†", "SASRec", "GRU4Rec", "SGP4SR", "Oracle†"]
    row = table.rows[0]
    assert row[2] == Cell("0.0500") and row[6] == Cell("0.6000")  # one seed: no spread, never marked
    assert row[5].mark == "best" and row[7].text == "+25.00%"  # the oracle is not the best, SASRec the baseline
    rec = numbers[(numbers.model == "sgp4sr") & (numbers.metric == "recall@10")].iloc[0]
    assert rec.best_baseline == "sasrec"
    assert any("Reference rows" in note for note in table.notes)
    assert set(numbers[numbers.get("bound") == True].model) == {"popularity", "oracle"}  # noqa: E712


def test_runs_that_ended_at_the_epoch_cap_are_flagged(tmp_path, monkeypatch):
    monkeypatch.setattr("sgp4sr.report.tables._significance", lambda *a, **k: {})
    paths = []
    for seed, (stopped, run_epochs) in enumerate([(True, 18), (False, 10), (False, 10)], start=1):
        paths.append(write_run(tmp_path, "demo", "sgp4sr", "default", seed, test=_fixed(0.2)))
        paths.append(write_run(tmp_path, "demo", "sasrec", "default", seed, test=_fixed(0.2)))
        metrics = json.loads(paths[-2].read_text())
        metrics.update(stopped_early=stopped, epochs_run=run_epochs, best_epoch=run_epochs - 2,
                       config={"training": {"epochs": 10 if not stopped else 40}})
        write_json(paths[-2], metrics)
    runs = load_runs(paths)
    table, _ = table2(runs, "sgp4sr", METRICS, "ndcg@10")
    flagged = [n for n in table.notes if n.startswith("Not converged")]
    assert flagged == ["Not converged: demo, SGP4SR: 2 of 3 run(s) ended at the 10-epoch cap without early "
                       "stopping (best epochs 8, 8): its validation metric may still have been rising."]
    table3_notes = table3([r for r in runs if r.model == "sgp4sr"], "sgp4sr", ["default"], METRICS)[0].notes
    assert flagged[0] in table3_notes
