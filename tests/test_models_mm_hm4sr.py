"""HM4SR: shapes, padding, determinism, MoE gates, time-interval buckets, category prediction, a short training."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mm_fixtures import (check_determinism, check_padding_invariance, check_scores, one_pass, planted,
                         popularity_recall, train_briefly, write_benchmark_split)
from sgp4sr.data.load import load_split
from sgp4sr.engine.run import RunSpec, prepare
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.mm_blocks import expand_prefixes

HM4SR = get_model_class("hm4sr")


@pytest.fixture(scope="module")
def data():
    return planted(seed=4)


@pytest.fixture(scope="module")
def labelled(data):
    """The planted shop with its clusters as item categories (padding -1)."""
    return dataclasses.replace(data, ctx=dataclasses.replace(data.ctx, item_categories=data.labels))


def build(data, **kw):
    params = dict(hidden_size=32, layers=1, heads=2, inner_size=32, dropout=0.1, attn_dropout=0.1)
    params.update(kw)
    return HM4SR(data.ctx, **params)


def test_scores_shape_and_pad(data):
    check_scores(build(data), data)


def test_padding_invariance(data):
    check_padding_invariance(build(data), data)


def test_determinism(data):
    check_determinism(lambda: build(data), data)


def test_determinism_with_category_labels(labelled):
    check_determinism(lambda: build(labelled), labelled)


def test_missing_modality_is_named(data):
    ctx = ModelContext(n_items=data.ctx.n_items, max_len=12, features={"image": data.ctx.features["image"]},
                       extra={"dataset": "shop"})
    with pytest.raises(ValueError, match="hm4sr needs the 'text' features; shop provides: image"):
        HM4SR(ctx)


def test_interval_buckets_are_log_scaled_gaps(data):
    model = build(data, interval_scale=100.0)
    seq = torch.tensor([[0, 3, 4, 5, 6]])
    times = torch.tensor([[0, 1_000, 1_001, 2_024, 2_024]])
    batch = Batch(seq=seq, timestamps=times)
    seconds, days = model.times(batch)
    buckets = model.temporal.buckets(seconds, seq)
    # padding and the oldest item: 0; gaps 1 s, 1023 s, 0 s -> floor(100 * log2(gap + 1))
    assert buckets.tolist() == [[0, 0, 100, 1000, 0]]
    torch.testing.assert_close(days, torch.tensor([[0, 0, 1, 1024, 1024]]) / 86_400.0)
    # without timestamps the positions are the times: every gap is 1
    seconds, _ = model.times(Batch(seq=seq))
    assert model.temporal.buckets(seconds, seq).tolist() == [[0, 0, 100, 100, 100]]
    # the largest configured interval still has a bucket
    top = math.floor(100 * math.log2(7305 * 86_400 + 1))
    assert top < model.temporal.n_buckets


def test_gates_sum_to_one(data):
    torch.manual_seed(0)
    model = build(data).eval()
    batch = Batch(seq=data.seqs[:4], timestamps=data.times[:4])
    xs, time_emb = model.streams(batch)
    for gate in model.interactive.gate_probs(xs):
        assert gate.shape[-1] == 4
        torch.testing.assert_close(gate.sum(-1), torch.ones(gate.shape[:-1]))
    _, route = model.temporal(torch.cat(xs, -1), time_emb)
    torch.testing.assert_close(route.sum(-1), torch.ones(route.shape[:-1]))
    # the ID stream's interactive weight starts at 0, the modalities' at 1 (the released config)
    assert model.interactive.weight.tolist() == [0.0, 1.0, 1.0]


def test_timestamps_change_the_prediction(data):
    torch.manual_seed(0)
    model = build(data).eval()
    batch = Batch(seq=data.seqs[:4], timestamps=data.times[:4])
    slower = data.times[:4].clone()
    slower[:, -1] += 86_400 * 365
    with torch.no_grad():
        a = model.full_sort_predict(batch)
        b = model.full_sort_predict(Batch(seq=data.seqs[:4], timestamps=slower))
    assert (a[:, 1:] - b[:, 1:]).abs().max() > 1e-6


def test_one_pass_equals_prefix_rows_without_random_augmentation(data):
    torch.manual_seed(0)
    model = build(data, pcl_weight=0.0).eval()
    batch = one_pass(data, torch.arange(8))
    with torch.no_grad():
        torch.testing.assert_close(model.calculate_loss(batch), model.calculate_loss(expand_prefixes(batch)))


def test_placeholder_mask_takes_beta_of_each_sequence(data):
    model = build(data, beta=0.3)
    seq = data.seqs[:20]
    mask = model.placeholder_mask(seq)
    assert not mask[seq == 0].any()
    assert torch.equal(mask.sum(1), torch.floor((seq != 0).sum(1) * 0.3).long())


def test_auxiliary_losses_add_to_the_main_loss(data):
    torch.manual_seed(0)
    model = build(data).eval()
    batch = one_pass(data, torch.arange(8))
    with torch.no_grad():
        plain = build(data, pcl_weight=0.0, idcl_weight=0.0)
        plain.load_state_dict(model.state_dict())
        plain.eval()
        assert model.calculate_loss(batch) > plain.calculate_loss(batch)


def test_category_loss_adds_to_the_loss_and_trains_the_head(labelled):
    torch.manual_seed(0)
    model = build(labelled, pcl_weight=0.0).eval()  # no random augmentation: losses comparable
    head = model.category_head
    assert head.out_features == 4 and model.item_category.tolist() == labelled.labels.tolist()
    batch = one_pass(labelled, torch.arange(8))
    loss = model.calculate_loss(batch)
    loss.backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert model.item_embedding.weight.grad[batch.seq[batch.seq != 0].unique()].abs().sum() > 0
    plain = build(labelled, pcl_weight=0.0, cp_weight=0.0).eval()
    assert plain.category_head is None
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("category_head.")})
    with torch.no_grad():
        cp = model.category_loss(batch.seq)
        torch.testing.assert_close(loss.detach() - plain.calculate_loss(batch), cp)
        # BCE-with-logits over one-hot targets of the real input items (padding has label -1)
        items = batch.seq[batch.seq != 0]
        reps = torch.cat([model.item_embedding(items)] + [model.projections[m](getattr(model, f"feat_{m}")[items])
                                                           for m in model.modalities], dim=-1)
        target = torch.nn.functional.one_hot(torch.from_numpy(labelled.labels)[items], 4).float()
        torch.testing.assert_close(cp, torch.nn.functional.binary_cross_entropy_with_logits(head(reps), target))


def test_without_category_labels_cp_is_off_and_warned(data, labelled, caplog):
    with caplog.at_level(logging.WARNING, logger="sgp4sr.models.hm4sr"):
        torch.manual_seed(3)
        off = build(data)
    assert off.category_head is None and "item_category" not in dict(off.named_buffers())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "category-prediction loss" in warnings[0] and "off" in warnings[0]
    torch.manual_seed(3)
    on = build(labelled)
    shared = on.state_dict()
    for name, value in off.state_dict().items():  # the head is drawn last: every other weight matches
        torch.testing.assert_close(value, shared[name])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sgp4sr.models.hm4sr"):
        off.calculate_loss(one_pass(data, torch.arange(4)))
    assert not caplog.records  # warned once, at build time, not per batch


def test_the_engine_gives_hm4sr_the_split_categories(data, tmp_path):
    """prepare() reads items.parquet of the split folder; without it the model runs without CP."""
    split_dir = tmp_path / "split"
    write_benchmark_split(data, split_dir)
    split = load_split(split_dir)
    rows = np.array([int(t) if t else 0 for t in split.item_tokens])
    for name, matrix in data.ctx.features.items():
        np.save(tmp_path / f"{name}.npy", matrix[rows])
    spec = RunSpec(data=split_dir, out=tmp_path / "run", model="hm4sr", training={"max_len": 8},
                   model_params={"hidden_size": 8, "layers": 1, "inner_size": 8}, features=tmp_path,
                   modalities=["image", "text"])
    assert prepare(spec).model.category_head is None  # bare benchmark folder: no items.parquet
    paths = [f"Shop > Cluster{c} > Leaf" for c in data.labels[rows[1:]]]
    pd.DataFrame({"item_idx": np.arange(1, split.n_items, dtype=np.int32), "item": split.item_tokens[1:],
                  "categories": paths}).to_parquet(split_dir / "items.parquet")
    model = prepare(spec).model
    assert model.item_category.tolist() == data.labels[rows].tolist()


@pytest.mark.slow
def test_short_training_beats_popularity():
    small = planted(seed=4, n_users=160)
    torch.manual_seed(0)
    model = build(small, hidden_size=16, dropout=0.1)
    recall = train_briefly(model, small, epochs=6, lr=5e-3, batch_size=160)
    pop = popularity_recall(small)
    assert recall > pop + 0.3, (recall, pop)
