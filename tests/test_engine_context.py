"""The model context from real graph-stage artefacts: loading, shape checks, and SGP4SR runs through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine_fixtures import write_planted_split
from sgp4sr.data.load import load_split
from sgp4sr.engine.context import category_labels, context_files, load_context
from sgp4sr.layout import graph_suffix
from sgp4sr.engine.run import RunSpec, run_training
from sgp4sr.graphs import build_centres, build_cooccurrence, build_modal_graph, save_centres, save_sparse
from sgp4sr.graphs.neighbours import load_features
from sgp4sr.io import save_npy

GRAPHS = {"knn_k": 3, "mu_m": 2.0, "mu_o": 0.4, "centres": 4}
SEED = 11
REQUIRES = ("features", "cooccurrence", "modal_graphs", "centres")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Split + features (image, text, noisy image) + graphs for clean and fused, in the workflow layout."""
    root = tmp_path_factory.mktemp("ctx")
    write_planted_split(root / "data", n_users=120)
    split = load_split(root / "data")
    rng = np.random.default_rng(0)
    w = build_cooccurrence(split.train_seqs, split.n_items)
    save_sparse(root / "graphs" / "cooccurrence.npz", w)
    widths = {"image": 12, "text": 6}
    for m, width in widths.items():
        feats = rng.standard_normal((split.n_items, width)).astype(np.float32)
        feats[0] = 0
        save_npy(root / "features" / f"{m}.npy", feats)
    save_npy(root / "features" / "image@noise0.5.npy", np.load(root / "features" / "image.npy")[:, ::-1].copy())
    fused = load_features([root / "features" / f"{m}.npy" for m in widths])
    for m in [*widths, "fused"]:
        feats = fused if m == "fused" else np.load(root / "features" / f"{m}.npy")
        graph = build_modal_graph(feats, w, GRAPHS["knn_k"], GRAPHS["mu_m"], GRAPHS["mu_o"])
        save_sparse(root / "graphs" / "clean" / f"{m}_{graph_suffix(GRAPHS)}.npz", graph.graph)
        save_centres(root / "graphs" / "clean" / f"{m}_centres_k{GRAPHS['centres']}_s{SEED}.npz",
                     build_centres(feats, GRAPHS["centres"], SEED, n_init=1, max_iter=10))
    return root


def test_load_context_reads_what_the_model_requires(prepared):
    split = load_split(prepared / "data")
    files = context_files(REQUIRES, ["image", "text"], prepared / "features", prepared / "graphs",
                          graph_settings=GRAPHS, centres_seed=SEED)
    ctx = load_context(files, split.n_items, 8)
    assert ctx.features["image"].shape == (split.n_items, 12) and ctx.features["image"].dtype == np.float32
    assert ctx.cooccurrence.shape == (split.n_items, split.n_items)
    assert sorted(ctx.modal_graphs) == sorted(ctx.centres) == ["image", "text"]
    assert ctx.centres["text"].shape == (GRAPHS["centres"], split.n_items)
    fused = load_context(context_files(REQUIRES, ["image", "text"], prepared / "features", prepared / "graphs",
                                       graph_settings=GRAPHS, centres_seed=SEED, ablations=("wo_mul",)),
                         split.n_items, 8)
    assert list(fused.modal_graphs) == ["fused"] and fused.features["fused"].shape == (split.n_items, 18)


def test_missing_and_mismatched_files_are_named(prepared, tmp_path):
    split = load_split(prepared / "data")
    files = context_files(REQUIRES, ["image", "text"], prepared / "features", prepared / "graphs",
                          graph_settings={**GRAPHS, "knn_k": 7}, centres_seed=SEED)
    with pytest.raises(FileNotFoundError, match="image_H7_m2_o0.4.npz"):
        load_context(files, split.n_items, 8)
    save_npy(tmp_path / "image.npy", np.zeros((split.n_items + 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"image.npy: feature matrix has .* rows"):
        load_context(context_files(("features",), ["image"], tmp_path, None), split.n_items, 8)


def test_category_labels_are_the_most_specific_level_of_the_first_path():
    codes, names = category_labels(["Demo > A > X", "Demo > B > X", "Demo > A > X; Other > Y",
                                    "Demo", "", " Demo >  B > Z ", "Demo > A"])
    assert names == ["Demo > A", "Demo > A > X", "Demo > B > X", "Demo > B > Z"]
    # equal leaf names under different parents stay apart; only the first path counts; root-only -> -1
    assert codes.tolist() == [1, 2, 1, -1, -1, 3, 0] and codes.dtype == np.int64


def test_item_categories_come_from_items_parquet_when_required(tmp_path):
    n_items = 7  # padding + 6 items; item 6 is missing from the table
    pd.DataFrame({"item_idx": np.arange(1, 6, dtype=np.int32), "item": list("abcde"),
                  "categories": ["Demo > A > X", "Demo > B > X; Demo > A > X", "Demo", "",
                                 "Demo > A > X"]}).to_parquet(tmp_path / "items.parquet")
    files = context_files(("categories",), [], None, None, data_dir=tmp_path)
    ctx = load_context(files, n_items, 8)
    assert ctx.item_categories.dtype == np.int64
    assert ctx.item_categories.tolist() == [-1, 0, 1, -1, -1, 0, -1]
    # models that do not ask for categories do not read them
    assert load_context(context_files(("features",), [], tmp_path, None, data_dir=tmp_path), n_items,
                        8).item_categories is None
    with pytest.raises(ValueError, match=r"items.parquet: item_idx spans 1..5 but the split has items 1..3"):
        load_context(files, 4, 8)


@pytest.mark.parametrize("table", [None, ["", "Demo", "Demo"]])
def test_no_item_categories_without_category_metadata(tmp_path, table):
    """A bare benchmark folder (no items.parquet) or an import without metadata: the field is None."""
    if table is not None:
        pd.DataFrame({"item_idx": np.arange(1, 4, dtype=np.int32), "item": list("abc"),
                      "categories": table}).to_parquet(tmp_path / "items.parquet")
    files = context_files(("features", "categories"), [], tmp_path, None, data_dir=tmp_path)
    assert files.all() == []  # optional input: never reported missing
    assert load_context(files, 4, 8).item_categories is None


@pytest.mark.parametrize("variant", ["default", "wo_mul+fset~image@noise0.5"])
def test_sgp4sr_runs_through_the_engine(prepared, tmp_path, variant):
    if variant != "default":  # the noisy feature set has its own graphs folder; reuse the clean files there
        noisy = prepared / "graphs" / "image@noise0.5"
        if not noisy.exists():
            noisy.symlink_to(prepared / "graphs" / "clean", target_is_directory=True)
    spec = RunSpec(data=prepared / "data", out=tmp_path / "run", model="sgp4sr", variant=variant, seed=1,
                   training={"epochs": 1, "batch_size": 32, "eval_batch_size": 64, "max_len": 8, "topk": [10],
                             "valid_metric": "recall@10"},
                   model_params={"hidden_size": 8, "layers": 1, "heads": 2, "dropout": 0.1},
                   features=prepared / "features", graphs=prepared / "graphs", modalities=["image", "text"],
                   graph_settings=GRAPHS, centres_seed=SEED)
    metrics = run_training(spec)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["config"]["ablations"] == list(metrics["config"]["ablations"])
    inputs = saved["config"]["inputs"]
    if variant == "default":
        assert inputs["features/image"].endswith("features/image.npy") and "modal_graph/text" in inputs
    else:
        assert inputs["features/image"].endswith("image@noise0.5.npy") and list(
            k for k in inputs if k.startswith("modal_graph/")) == ["modal_graph/fused"]
    assert 0.0 <= metrics["test"]["recall@10"] <= 1.0
