"""Figures 3 and 4 from made-up runs: the x values come from the variants, files are written."""

from __future__ import annotations

import pandas as pd
import pytest

from sgp4sr.cli.main import main
from sgp4sr.report.figures import centre_count, noise_ratio
from report_fixtures import write_run


def _scores(x: float) -> dict:
    return {"recall@10": x, "ndcg@10": x / 2}


def test_x_values_from_variants():
    assert noise_ratio("default", "image") == 0.0
    assert noise_ratio("fset~image@noise0.3", "image") == 0.3
    with pytest.raises(ValueError, match="image@noise"):
        noise_ratio("fset~text@noise0.3", "image")
    assert centre_count("wo_cip", 20) == 0 and centre_count("k~50", 20) == 50 and centre_count("default", 20) == 20
    with pytest.raises(ValueError, match="default number of centres"):
        centre_count("default", None)
    with pytest.raises(ValueError, match="not a centre-count variant"):
        centre_count("wo_coo", 20)


def test_figure_noise_written_with_ratio_to_best_baseline(tmp_path):
    paths = []
    for seed in (1, 2):
        for ratio, variant in ((0.0, "default"), (0.2, "fset~image@noise0.2"), (0.4, "fset~image@noise0.4")):
            paths.append(write_run(tmp_path, "demo", "sgp4sr", variant, seed, test=_scores(0.3 - ratio / 4)))
            paths.append(write_run(tmp_path, "demo", "sasrecf", variant, seed, test=_scores(0.2 - ratio / 2)))
    prefix = tmp_path / "report" / "figure3_noise"
    assert main(["report", "figure-noise", "--runs", *map(str, paths), "--out-prefix", str(prefix)]) == 0
    for suffix in ("png", "pdf"):
        assert (tmp_path / "report" / f"figure3_noise.{suffix}").stat().st_size > 1000
    data = pd.read_csv(f"{prefix}.csv")
    ratio = data.query("model == 'ratio_to_best_baseline' and metric == 'recall@10'").set_index("ratio")["mean"]
    assert ratio.loc[0.2] == pytest.approx(0.25 / 0.1) and ratio.loc[0.0] == pytest.approx(1.5)
    assert data.query("model == 'sgp4sr' and metric == 'recall@10'").n.tolist() == [2, 2, 2]


def test_figure_centres_written(tmp_path):
    paths = [write_run(tmp_path, "demo", "sgp4sr", v, 1, test=_scores(x))
             for v, x in (("wo_cip", 0.2), ("k~10", 0.25), ("default", 0.3), ("k~50", 0.28))]
    prefix = tmp_path / "report" / "figure4_centres"
    assert main(["report", "figure-centres", "--runs", *map(str, paths), "--default-k", '{"demo": 20}',
                 "--out-prefix", str(prefix)]) == 0
    assert (tmp_path / "report" / "figure4_centres.png").stat().st_size > 1000
    assert (tmp_path / "report" / "figure4_centres.pdf").stat().st_size > 1000
    data = pd.read_csv(f"{prefix}.csv").query("metric == 'recall@10'")
    assert data.k.tolist() == [0, 10, 20, 50] and data["mean"].tolist() == pytest.approx([0.2, 0.25, 0.3, 0.28])
