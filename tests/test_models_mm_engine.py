"""The multimodal baselines run by name through the shared engine and write the standard outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mm_fixtures import planted, synthetic_cache, write_benchmark_split
from sgp4sr.data.load import load_split
from sgp4sr.engine.run import RunSpec, run_training
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch

TRAINING = {"epochs": 2, "patience": 2, "batch_size": 64, "eval_batch_size": 128, "lr": 0.005, "max_len": 8,
            "topk": [5, 10], "valid_metric": "recall@10"}
SMALL = {"hidden_size": 16, "dropout": 0.1}
PARAMS = {
    "mmmlp": {**SMALL, "layers": 1},
    "unisrec": {**SMALL, "layers": 1, "inner_size": 16, "attn_dropout": 0.1},
    "missrec": {**SMALL, "inner_size": 16, "heads": 2, "interest_ratio": 0.2},
    "hm4sr": {**SMALL, "layers": 1, "inner_size": 16, "attn_dropout": 0.1},
    "iisan": {**SMALL, "layers": 1, "adapter_size": 8},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data = planted(seed=6, n_users=120)
    root = tmp_path_factory.mktemp("mm_engine")
    write_benchmark_split(data, root / "split")
    split = load_split(root / "split")
    rows = np.array([int(t) if t else 0 for t in split.item_tokens])
    feats = root / "features"
    feats.mkdir()
    for name, matrix in data.ctx.features.items():
        np.save(feats / f"{name}.npy", matrix[rows])
    synthetic_cache(data, root / "iisan_hidden.npz", rows=rows)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(PARAMS))
def test_runs_through_the_engine(prepared, model, tmp_path):
    params = dict(PARAMS[model])
    if model == "iisan":
        params["hidden_states"] = str(prepared / "iisan_hidden.npz")
    spec = RunSpec(data=prepared / "split", out=tmp_path / model, model=model, seed=1,
                   training={**TRAINING, "train_form": "onepass"}, model_params=params,
                   features=prepared / "features", modalities=["image", "text"], threads=1)
    metrics = run_training(spec)
    assert sorted(p.name for p in (tmp_path / model).iterdir()) == ["metrics.json", "model.pt", "ranks.parquet"]
    saved = json.loads((tmp_path / model / "metrics.json").read_text())
    assert saved["model"] == model and saved["epochs_run"] == 2
    assert 0.0 <= metrics["test"]["recall@10"] <= 1.0


def test_bad_hyper_parameter_is_reported(prepared, tmp_path):
    spec = RunSpec(data=prepared / "split", out=tmp_path / "x", model="unisrec", training=TRAINING,
                   model_params={"hidden_sise": 8}, features=prepared / "features", modalities=["image", "text"])
    with pytest.raises(ValueError, match="hidden_sise"):
        run_training(spec)


def test_eval_item_table_memo_follows_the_weights():
    """Ranking reuses the all-item table, but new weights (load, training) are always seen."""
    data = planted(seed=7, n_users=20)
    torch.manual_seed(0)
    model = get_model_class("unisrec")(data.ctx, hidden_size=16, layers=1, inner_size=16)
    model.eval()
    batch_seq = data.seqs[:4]
    with torch.no_grad():
        first = model.full_sort_predict(Batch(seq=batch_seq))
        assert "_eval_tables" in model.__dict__
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state["adaptor.experts.0.lin.weight"] += 1.0
        model.load_state_dict(state)
        assert "_eval_tables" not in model.__dict__
        changed = model.full_sort_predict(Batch(seq=batch_seq))
    assert not torch.allclose(first, changed)
    model.train()
    assert "_eval_tables" not in model.__dict__
