"""BERT4Rec, FDSA and SASRecF on tiny data built here: shapes, padding, causality,
the cloze masking, learning a planted pattern, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgp4sr.engine.evaluate import eval_inputs, metrics_from_ranks, rank_users
from sgp4sr.engine.sequences import training_examples
from sgp4sr.engine.settings import TrainConfig
from sgp4sr.engine.trainer import fit
from sgp4sr.models import get_model_class
from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.sasrecf import FeatureProjection

N_ITEMS = 25  # including padding
MAX_LEN = 8
MODELS = ["bert4rec", "fdsa", "sasrecf"]
CAUSAL = ["fdsa", "sasrecf"]
SMALL = dict(hidden_size=16, layers=2, heads=2)

torch.set_num_threads(1)


def make_features(n_items: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = {"text": rng.normal(size=(n_items, 12)).astype(np.float32),
                "image": rng.normal(size=(n_items, 20)).astype(np.float32)}
    for f in features.values():
        f[0] = 0.0
    return features


def make_model(name: str, n_items: int = N_ITEMS, max_len: int = MAX_LEN, seed: int = 0,
               features: dict[str, np.ndarray] | None = None, **overrides):
    torch.manual_seed(seed)
    ctx = ModelContext(n_items=n_items, max_len=max_len,
                       features=make_features(n_items) if features is None else features)
    return get_model_class(name)(ctx, **{**SMALL, **overrides})


def one_pass(rows: list[list[int]], t: int = MAX_LEN) -> Batch:
    """One-pass batch of full item sequences: seq = s[:-1], target = s[1:], left padded."""
    seq = torch.zeros(len(rows), t, dtype=torch.long)
    target = torch.zeros_like(seq)
    for b, s in enumerate(rows):
        s = s[-(t + 1):]
        n = len(s) - 1
        seq[b, t - n:] = torch.tensor(s[:-1])
        target[b, t - n:] = torch.tensor(s[1:])
    return Batch(seq, target)


def histories(rows: list[list[int]], t: int = MAX_LEN) -> torch.Tensor:
    seq = torch.zeros(len(rows), t, dtype=torch.long)
    for b, s in enumerate(rows):
        s = s[-t:]
        seq[b, t - len(s):] = torch.tensor(s)
    return seq


ROWS = [[3, 4, 5, 6, 7, 8], [1, 2], [9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [20, 21, 22]]


# -- interface -------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_shapes_pad_and_both_batch_forms(name: str) -> None:
    model = make_model(name)
    onepass = one_pass(ROWS)
    last_only = torch.zeros_like(onepass.target)
    last_only[:, -1] = onepass.target[:, -1]
    for batch in (onepass, Batch(onepass.seq, last_only)):
        loss = model.calculate_loss(batch)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
    assert model.items.weight.grad is not None and model.items.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(Batch(histories(ROWS)))
    assert scores.shape == (len(ROWS), N_ITEMS)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("name", MODELS)
def test_padding_invariance(name: str) -> None:
    """Extra left padding (a wider window) does not change any score. Histories
    are kept to 4 items so BERT4Rec's appended mask drops nothing in either window."""
    model = make_model(name).eval()
    rows = [r[-4:] for r in ROWS]
    with torch.no_grad():
        narrow = model.full_sort_predict(Batch(histories(rows, t=5)))
        wide = model.full_sort_predict(Batch(histories(rows, t=MAX_LEN)))
    torch.testing.assert_close(narrow[:, 1:], wide[:, 1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_models_ignore_future_positions(name: str) -> None:
    model = make_model(name).eval()
    seq = histories([[3, 4, 5, 6, 7, 8, 9, 10]])
    changed = seq.clone()
    changed[0, 5:] = torch.tensor([20, 21, 22])
    with torch.no_grad():
        a, b = model.sequence_output(seq), model.sequence_output(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_bert4rec_is_bidirectional() -> None:
    """The counterpart of the causal check: BERT4Rec's early positions do see later items."""
    model = make_model("bert4rec").eval()
    seq = histories([[3, 4, 5, 6, 7, 8, 9, 10]])
    changed = seq.clone()
    changed[0, -1] = 20
    with torch.no_grad():
        assert not torch.allclose(model.sequence_output(seq)[:, 0], model.sequence_output(changed)[:, 0])


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_one_pass_equals_prefix_rows(name: str) -> None:
    """The engine's one-pass form relies on it: the state at position j of a full row
    equals the last state of the row holding only the items up to j."""
    model = make_model(name).eval()
    items = [3, 4, 5, 6, 7, 8]
    with torch.no_grad():
        full = model.sequence_output(histories([items]))[0]
        for j in range(1, len(items) + 1):
            prefix = model.sequence_output(histories([items[:j]], t=j))[0, -1]
            torch.testing.assert_close(prefix, full[MAX_LEN - len(items) + j - 1], rtol=1e-5, atol=1e-5)


# -- BERT4Rec cloze ----------------------------------------------------------------
def test_bert4rec_training_sequence_both_forms() -> None:
    batch = one_pass([[1, 2, 3, 4], [5, 6]], t=4)
    prefix = Batch(batch.seq, torch.zeros_like(batch.target))
    prefix.target[:, -1] = batch.target[:, -1]
    wide, tight = make_model("bert4rec", max_len=8), make_model("bert4rec", max_len=4)
    for form in (batch, prefix):
        # a trimmed batch grows by one column; at max_len the oldest item makes room
        assert wide.training_sequence(form).tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 5, 6]]
        assert tight.training_sequence(form).tolist() == [[1, 2, 3, 4], [0, 0, 5, 6]]
    # a row without a target (engine padding row) keeps its items
    empty = Batch(torch.tensor([[0, 0, 7, 8]]), torch.zeros(1, 4, dtype=torch.long))
    assert tight.training_sequence(empty).tolist() == [[0, 0, 7, 8]]


def test_bert4rec_mask_rate_and_padding() -> None:
    model = make_model("bert4rec", mask_ratio=0.3, mask_last_ratio=0.0)
    seq = histories([list(range(1, 9)), [2, 3, 4], [5]] * 300)
    torch.manual_seed(1)
    masked = torch.stack([model.draw_mask(seq) for _ in range(20)])
    real = (seq != 0).expand_as(masked)
    assert not masked[~real].any(), "padding was masked"
    rate = masked[real].float().mean().item()
    assert abs(rate - 0.3) < 0.01, rate


def test_bert4rec_mask_last_share() -> None:
    r, p, length = 0.4, 0.2, 8
    model = make_model("bert4rec", mask_ratio=p, mask_last_ratio=r)
    seq = histories([list(range(1, length + 1))] * 4000)
    torch.manual_seed(2)
    masked = model.draw_mask(seq)
    last_only = torch.zeros(length, dtype=torch.bool)
    last_only[-1] = True
    share = (masked == last_only).all(dim=1).float().mean().item()
    expected = r + (1 - r) * p * (1 - p) ** (length - 1)
    assert abs(share - expected) < 0.03, (share, expected)
    only = make_model("bert4rec", mask_last_ratio=1.0).draw_mask(histories([[4, 5, 6], [7]]))
    assert only.tolist() == [[False] * (MAX_LEN - 1) + [True]] * 2


def test_bert4rec_uses_mask_token_and_scores_only_masked_positions(monkeypatch) -> None:
    model = make_model("bert4rec", mask_ratio=0.5)
    seen = {}
    original = model.sequence_output

    def spy(seq: torch.Tensor) -> torch.Tensor:
        seen["inputs"] = seq.clone()
        return original(seq)

    monkeypatch.setattr(model, "sequence_output", spy)
    batch = one_pass(ROWS)
    model.calculate_loss(batch)
    full = model.training_sequence(batch)
    inputs = seen["inputs"]
    hidden = inputs == N_ITEMS
    assert hidden.any()
    assert (inputs[~hidden] == full[~hidden]).all(), "unmasked positions must keep their item"
    assert (full[hidden] != 0).all(), "padding must never be masked"
    prediction = model.prediction_sequence(histories([[3, 4, 5]]))
    assert prediction[0, -1] == N_ITEMS and prediction[0, -3:-1].tolist() == [4, 5]


# -- features ------------------------------------------------------------------------
def test_feature_projection_matches_dense_lookup_and_is_not_saved() -> None:
    features = make_features(N_ITEMS)["image"]
    torch.manual_seed(0)
    layer = FeatureProjection(features, 6)
    seq = histories(ROWS)
    expected = layer.proj(torch.from_numpy(features)[seq]) * (seq != 0).unsqueeze(-1)
    torch.testing.assert_close(layer(seq), expected)
    assert "table" not in layer.state_dict()


def test_missing_or_bad_features_are_named() -> None:
    with pytest.raises(ValueError, match="'text'.*provides: image"):
        make_model("fdsa", features={"image": make_features(N_ITEMS)["image"]})
    with pytest.raises(ValueError, match="shape"):
        make_model("sasrecf", features={"text": np.zeros((N_ITEMS - 1, 4), np.float32)})
    with pytest.raises(ValueError, match="provides none"):
        make_model("sasrecf", features={})


@pytest.mark.parametrize("output_norm", [True, False])
def test_fdsa_output_norm_is_recboles_layernorm_after_combining(output_norm: bool) -> None:
    model = make_model("fdsa", output_norm=output_norm).eval()
    with torch.no_grad():
        out = model.sequence_output(histories([[3, 4, 5], [7, 8]]))[:, -1]
    normalised = torch.allclose(out.mean(-1), torch.zeros(2), atol=1e-5) and torch.allclose(
        out.var(-1, unbiased=False), torch.ones(2), atol=1e-3)
    assert normalised is output_norm  # at initialisation the LayerNorm is the identity affine map
    assert any(isinstance(m, torch.nn.LayerNorm) for m in model.output.modules()) is output_norm


def test_fdsa_feature_key_selects_modality() -> None:
    model = make_model("fdsa", feature="image")
    assert model.feature_proj.table.shape == (N_ITEMS, 20)


# -- learning and determinism ------------------------------------------------------------
def planted_sequences(n_users: int, n_items: int, length: int, seed: int) -> list[list[int]]:
    """Each user walks a fixed successor chain (item i -> i+1, wrapping) from a random start,
    with a 10% chance per step of a random jump: next-item order matters, popularity does not."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_users):
        item = int(rng.integers(1, n_items))
        row = [item]
        for _ in range(length - 1):
            item = int(rng.integers(1, n_items)) if rng.random() < 0.1 else item % (n_items - 1) + 1
            row.append(item)
        rows.append(row)
    return rows


def recall_at(scores: torch.Tensor, target: torch.Tensor, k: int) -> float:
    return (scores.topk(k, dim=1).indices == target[:, None]).any(dim=1).float().mean().item()


#: one layer and a high lr keep the test fast; BERT4Rec sees one cloze draw per user and
#: epoch, so it gets more masked items per draw and more epochs than the causal models
#: (which learn from every position of every sequence)
TRAINING = {"bert4rec": (dict(layers=1, mask_ratio=0.4), 25),
            "fdsa": (dict(layers=1), 15),
            "sasrecf": (dict(layers=1), 15)}


@pytest.mark.parametrize("name", MODELS)
def test_engine_training_beats_popularity(name: str) -> None:
    """Leave-one-out on planted sequences through the shared engine (one-pass batching, fit,
    ranking). The prefix form is covered by the shape and one-pass == prefix tests."""
    n_items, t = 31, 8
    rows = [np.array(r) for r in planted_sequences(240, n_items, t + 3, seed=3)]
    train_seqs = [r[:-2] for r in rows]
    valid, test = np.array([r[-2] for r in rows]), np.array([r[-1] for r in rows])
    overrides, epochs = TRAINING[name]
    # batch_size counts targets: 8 per row here, so batches of about 60 rows (4 steps per epoch)
    cfg = TrainConfig(epochs=epochs, patience=epochs, batch_size=8 * 60, lr=1e-2, max_len=t, device="cpu")
    model = make_model(name, n_items=n_items, max_len=t, features=make_features(n_items, seed=4),
                       dropout=0.1, hidden_size=32, **overrides)
    cpu = torch.device("cpu")
    examples = training_examples(train_seqs, t, "onepass", n_items)

    def validate() -> dict[str, float]:
        ranks = rank_users(model, eval_inputs(train_seqs, valid, "valid"), valid, t, 256, cpu)
        return metrics_from_ranks(ranks, cfg.topk)

    fit(model, examples, validate, cfg, cpu, seed=0)
    learned = metrics_from_ranks(rank_users(model, eval_inputs(train_seqs, valid, "test"), test, t, 256, cpu), [5])
    counts = np.bincount(np.concatenate(train_seqs), minlength=n_items).astype(np.float64)
    counts[0] = -np.inf
    popularity_scores = torch.from_numpy(np.tile(counts, (len(rows), 1)))
    popularity = recall_at(popularity_scores, torch.from_numpy(test), 5)
    assert learned["recall@5"] > popularity + 0.4, (learned, popularity)


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_training(name: str) -> None:
    def run(seed: int) -> torch.Tensor:
        model = make_model(name, seed=seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        batch = one_pass(ROWS)
        for _ in range(3):
            optimiser.zero_grad()
            model.calculate_loss(batch).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            return model.full_sort_predict(Batch(histories(ROWS)))

    torch.testing.assert_close(run(5), run(5), rtol=0, atol=0)
    assert not torch.allclose(run(5)[:, 1:], run(6)[:, 1:])
