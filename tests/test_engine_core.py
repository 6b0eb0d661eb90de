"""Engine pieces without training: ranks and metrics, training forms, batching, settings, file names."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from sgp4sr.engine.context import context_files, feature_file
from sgp4sr.engine.evaluate import eval_inputs, metrics_from_ranks, ranks_from_scores
from sgp4sr.engine.sequences import (batch_order, epoch_batches, left_pad, make_batch, onepass_examples,
                                     prefix_examples, row_targets, training_examples)
from sgp4sr.engine.settings import TrainConfig

NEG = float("-inf")


def _rank(scores, target, seen=None, chunk=None) -> int:
    s = torch.tensor([scores], dtype=torch.float32)
    seen_t = None if seen is None else torch.tensor([seen])
    return int(ranks_from_scores(s, torch.tensor([target]), seen_t, chunk)[0])


def test_rank_counts_ties_against_the_target():
    # items 1..4; target 1 scores 0.5; item 2 higher, item 3 ties -> rank 3
    assert _rank([NEG, 0.5, 0.9, 0.5, 0.1], 1) == 3
    # everything equal: the worst rank (pessimistic), never a lucky one
    assert _rank([0.0, 0.2, 0.2, 0.2, 0.2], 4) == 4


def test_rank_ignores_padding_column():
    assert _rank([100.0, 0.5, 0.1, 0.2], 1) == 1


def test_remove_seen_drops_history_but_keeps_a_repeated_target():
    scores = [NEG, 0.5, 0.9, 0.7, 0.1]
    assert _rank(scores, 1) == 3
    assert _rank(scores, 1, seen=[0, 2]) == 2            # item 2 seen -> removed; padding entry ignored
    assert _rank(scores, 1, seen=[1, 2, 3]) == 1         # the target itself was seen: still ranked


def test_item_chunks_give_the_same_ranks():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (7, 23), generator=gen).float()  # many ties
    target = torch.randint(1, 23, (7,), generator=gen)
    full = ranks_from_scores(scores.clone(), target)
    for chunk in (1, 4, 10, 100):
        assert torch.equal(ranks_from_scores(scores.clone(), target, item_chunk=chunk), full)


def test_metrics_match_hand_computation():
    m = metrics_from_ranks(np.array([1, 3, 11]), [5, 10])
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["ndcg@5"] == pytest.approx((1.0 + 1.0 / math.log2(4)) / 3)
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx(m["ndcg@5"])
    assert metrics_from_ranks(np.array([11]), [20])["ndcg@20"] == pytest.approx(1 / math.log2(12))


def _pairs(ex) -> Counter:
    """Multiset of (user, context, target) examples of a set of rows."""
    out: Counter = Counter()
    for seq, tgt, u in zip(ex.seq, ex.target, ex.user):
        for p in np.flatnonzero(tgt):
            ctx = tuple(int(x) for x in seq[:p + 1] if x)
            out[(int(u), ctx, int(tgt[p]))] += 1
    return out


def test_both_forms_hold_the_same_examples_for_short_sequences():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, 30, size=n) for n in (1, 2, 3, 7, 9, 10, 11)]  # max_len 10: n - 1 <= 10
    pre, one = prefix_examples(seqs, 10), onepass_examples(seqs, 10)
    assert _pairs(pre) == _pairs(one)
    assert pre.n_targets == one.n_targets == sum(n - 1 for n in (1, 2, 3, 7, 9, 10, 11))
    assert len(one) == 6  # one row per user with at least two items


def test_prefix_form_truncates_to_the_most_recent_items():
    ex = prefix_examples([np.arange(1, 9)], 3)
    assert ex.seq[-1].tolist() == [5, 6, 7] and ex.target[-1].tolist() == [0, 0, 8]
    assert ex.seq[0].tolist() == [0, 0, 1] and ex.target[0].tolist() == [0, 0, 2]


@pytest.mark.parametrize("n,max_len", [(23, 5), (12, 4), (7, 5), (50, 7), (9, 1)])
def test_onepass_windows_predict_every_target_once_with_bounded_context(n, max_len):
    s = np.arange(101, 101 + n)
    ex = onepass_examples([s], max_len)
    pairs = _pairs(ex)
    targets = Counter(t for (_, _, t) in pairs.elements())
    assert targets == Counter(s[1:].tolist())  # every target exactly once
    for (_, ctx, t), _count in pairs.items():
        j = t - 101
        assert 1 <= len(ctx) <= max_len
        assert list(ctx) == s[j - len(ctx):j].tolist()  # the items right before the target
        if j <= max_len:
            assert len(ctx) == j  # the first window: full context, as the prefix form
        else:
            assert len(ctx) >= max_len - math.ceil(max_len / 2) + 1


def test_training_examples_reject_bad_items_and_forms():
    with pytest.raises(ValueError, match="user 1"):
        training_examples([np.array([1, 2]), np.array([3, 99])], 5, "onepass", n_items=10)
    with pytest.raises(ValueError, match="train_form"):
        training_examples([np.array([1, 2])], 5, "sliding")


@pytest.mark.parametrize("buckets", [True, False])
def test_batch_order_is_a_seeded_permutation(buckets):
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    a = batch_order(lengths, 64, np.random.default_rng(5), buckets)
    b = batch_order(lengths, 64, np.random.default_rng(5), buckets)
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    if buckets:  # batches are far more homogeneous than random ones
        spread = np.mean([np.ptp(lengths[x]) for x in a])
        assert spread < 10


def _random_sequences(n_users: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 500, size=n) for n in rng.integers(3, 120, size=n_users)]


@pytest.mark.parametrize("batch_size", [64, 256])
@pytest.mark.parametrize("buckets", [True, False])
def test_onepass_batches_pack_targets_like_prefix_rows(batch_size, buckets):
    """batch_size counts targets in both forms: steps per epoch agree within 5%, no row is split."""
    seqs = _random_sequences(3000, 1)
    one = onepass_examples(seqs, 50, n_items=500)
    pre = prefix_examples(seqs, 50, n_items=500)
    one_batches = epoch_batches(one, batch_size, np.random.default_rng(3), buckets)
    pre_batches = epoch_batches(pre, batch_size, np.random.default_rng(3), buckets)
    assert abs(len(one_batches) / len(pre_batches) - 1) <= 0.05
    assert len(pre_batches) == math.ceil(pre.n_targets / batch_size)
    # every row exactly once (rows are never split), and each batch about batch_size targets
    assert sorted(np.concatenate(one_batches).tolist()) == list(range(len(one)))
    per_batch = np.array([row_targets(one)[b].sum() for b in one_batches])
    assert per_batch.sum() == one.n_targets
    assert abs(np.median(per_batch) / batch_size - 1) < 0.15
    assert per_batch.max() <= batch_size + 50  # at most one row (<= max_len targets) over


def test_epoch_batches_are_deterministic_per_seed():
    one = onepass_examples(_random_sequences(500, 2), 50, n_items=500)
    a = epoch_batches(one, 128, np.random.default_rng([7, 1]))
    b = epoch_batches(one, 128, np.random.default_rng([7, 1]))
    c = epoch_batches(one, 128, np.random.default_rng([7, 2]))
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a, c))


def test_a_row_longer_than_the_batch_is_a_batch_of_its_own():
    lengths = np.array([40, 3, 3, 40])
    batches = batch_order(lengths, 8, np.random.default_rng(0), buckets=False, targets=lengths)
    assert sorted(np.concatenate(batches).tolist()) == [0, 1, 2, 3]
    for b in batches:
        assert len(b) == 1 or lengths[b].sum() <= 8 + 3


def test_make_batch_trims_left_padding():
    seq, lengths = left_pad([np.array([1, 2]), np.array([3])], 6)
    batch = make_batch(seq, seq, np.array([0, 1]), lengths)
    assert batch.seq.tolist() == [[1, 2], [0, 3]]
    assert batch.seq.dtype == torch.long


def test_eval_inputs_append_the_validation_item_for_test():
    seqs = [np.array([1, 2]), np.array([4])]
    assert [x.tolist() for x in eval_inputs(seqs, np.array([3, 5]), "test")] == [[1, 2, 3], [4, 5]]
    assert [x.tolist() for x in eval_inputs(seqs, np.array([3, 5]), "valid")] == [[1, 2], [4]]


def test_train_config_rejects_unknown_keys_and_bad_values():
    assert TrainConfig.from_dict({}).train_form == "onepass"
    with pytest.raises(ValueError, match="unknown training keys.*'epoch'"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="valid_metric"):
        TrainConfig.from_dict({"valid_metric": "hit@5"})
    assert TrainConfig.from_dict({"topk": [10], "valid_metric": "ndcg@5"}).topk == (5, 10)


def test_context_file_names_follow_the_contract(tmp_path):
    settings = {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.3, "centres": 50}
    files = context_files(("features", "cooccurrence", "modal_graphs", "centres"), ["image", "text"],
                          tmp_path / "f", tmp_path / "g", "image@noise0.3", settings, centres_seed=7)
    assert files.features["image"].name == "image@noise0.3.npy"
    assert files.features["text"].name == "text.npy"
    assert files.cooccurrence == tmp_path / "g" / "cooccurrence.npz"
    assert files.modal_graphs["text"] == tmp_path / "g" / "image@noise0.3" / "text_H10_m2.5_o0.3.npz"
    assert files.centres["image"].name == "image_centres_k50_s7.npz"
    fused = context_files(("modal_graphs",), ["image", "text"], None, tmp_path, "clean", settings,
                          ablations=("wo_mul",))
    assert list(fused.modal_graphs) == ["fused"]
    assert context_files((), ["image"], None, None).all() == []  # ID-only: nothing to read
    assert feature_file("x", "text", "image@noise0.1").name == "text.npy"
    with pytest.raises(ValueError, match="--features"):
        context_files(("features",), ["image"], None, None)


def test_static_requires_match_the_model_classes():
    """The Snakefile lists a run's inputs from REQUIRES without importing the models: they must agree."""
    from sgp4sr.models.registry import REQUIRES, available_models, get_model_class

    for name in available_models():
        assert tuple(get_model_class(name).requires) == REQUIRES[name], name
