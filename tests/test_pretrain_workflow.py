"""The workflow plans cross-domain pre-training before a listed model's training, and only when asked."""

from __future__ import annotations

import re

import pytest

from test_workflow import snakemake, workdir  # noqa: F401  (the fixture: a temporary copy of the workflow)

pytestmark = pytest.mark.workflow

TWO_DEMOS = """
run:
  datasets: [demo, demo2]
  models: [sasrec, missrec]
pretraining:
  models: [missrec]
  epochs: 2
datasets:
  demo2:
    source: demo
    kcore: 5
    demo: {n_users: 500, n_items: 300, n_categories: 5, min_length: 5, max_length: 20}
    modalities:
      image: {encoder: clip, model: ViT-B-32, pretrained: null}
      text: {encoder: sentence, model: sentence-transformers/all-MiniLM-L6-v2}
    graphs: {knn_k: 10, mu_m: 2.5, mu_o: 0.3, centres: 20}
"""
TARGET = "results/demo/runs/missrec/default/seed1/metrics.json"


@pytest.fixture
def two_demos(tmp_path):
    path = tmp_path / "two_demos.yaml"
    path.write_text(TWO_DEMOS)
    return str(path)


def test_pretrain_is_planned_before_the_listed_models_training(workdir, two_demos):  # noqa: F811
    result = snakemake(workdir, "-n", "--cores", "1", "-p", TARGET, "--configfile", two_demos)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "rule pretrain:" in out
    assert "train pretrain --model missrec --source demo2 results/demo2/data results/demo2/features" in out
    assert "--init results/pretrain/missrec/demo/model.pt" in out
    assert '"finetune": {"freeze_encoder": true}' in out

    graph = snakemake(workdir, "--rulegraph", "dot", "--configfile", two_demos, "--", TARGET)
    assert graph.returncode == 0, graph.stdout + graph.stderr
    nodes = dict(re.findall(r'(\d+)\[label = "(\w+)"', graph.stdout))
    edges = set(re.findall(r"(\d+) -> (\d+)", graph.stdout))
    ids = {label: node for node, label in nodes.items()}
    assert (ids["pretrain"], ids["train"]) in edges  # pretrain runs first, train reads its output
    assert (ids["features"], ids["pretrain"]) in edges and (ids["split"], ids["pretrain"]) in edges


def test_models_not_listed_train_from_scratch(workdir, two_demos):  # noqa: F811
    result = snakemake(workdir, "-n", "--cores", "1", "-p", "results/demo/runs/sasrec/default/seed1/metrics.json",
                       "--configfile", two_demos)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule pretrain:" not in result.stdout and "--init" not in result.stdout


def test_pretraining_with_one_dataset_fails_before_planning(workdir, tmp_path):  # noqa: F811
    bad = tmp_path / "one.yaml"
    bad.write_text("pretraining:\n  models: [unisrec]\n")
    result = snakemake(workdir, "-n", "--cores", "1", "all", "--configfile", str(bad))
    assert result.returncode != 0
    assert "only one dataset is configured" in result.stdout + result.stderr
