"""SGP4SR follows the authors' released code by default; each earlier form is a switch.

One test (or two) per point: centre scale and dropout, no forward LayerNorm in
the centre attention, the code's initialisation, the code's k-means call, and
float32 scores for ranking (every model). Tiny contexts from
``test_models_sgp4sr``; seconds in all.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import sgp4sr.models.sgp4sr_centres as centres_module
from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender
from test_models_sgp4sr import SEQS, build, left_pad, make_ctx, onepass_batch
from test_models_sgp4sr import one_thread  # noqa: F401  (autouse: tiny tensors run on one thread)


def _record_logits(monkeypatch) -> list[torch.Tensor]:
    """Every call's centre-selection logits (one call per modality), recorded on the way to the real function."""
    seen, original = [], centres_module.centre_weights

    def recording(logits, tau, noise):
        seen.append(logits.detach().clone())
        return original(logits, tau, noise)

    monkeypatch.setattr(centres_module, "centre_weights", recording)
    return seen


# --- 1. centre scale and dropout ----------------------------------------------------------------------


def test_centre_logits_scale_with_sqrt_d(monkeypatch):
    """Default: ``Z_m * d**0.5`` enters the selection (logits x sqrt(d)) and the attention; power 0 = unscaled."""
    logits = _record_logits(monkeypatch)
    batch = Batch(left_pad(SEQS))
    scaled, unscaled = build().eval(), build(centre_scale_power=0.0).eval()  # same seed: same weights
    out_scaled = scaled.full_sort_predict(batch)
    out_unscaled = unscaled.full_sort_predict(batch)
    n = len(scaled.modalities)
    assert len(logits) == 2 * n
    for code, old in zip(logits[:n], logits[n:]):
        torch.testing.assert_close(code, math.sqrt(16) * old)  # hidden_size 16
    assert not torch.allclose(out_scaled, out_unscaled)  # the attention reads the scaled centres too


def test_initial_centres_get_one_dropout_mask_per_output_position():
    z0 = torch.randn(3, 16)
    drop = nn.Dropout(0.5)
    assert centres_module.initial_centres(z0, 40, drop.eval()) is z0  # evaluation: shared, not copied
    assert centres_module.initial_centres(z0, 40, None) is z0
    torch.manual_seed(0)
    z = centres_module.initial_centres(z0, 40, drop.train())
    assert z.shape == (40, 3, 16)
    kept = z != 0
    assert 0.4 < kept.float().mean() < 0.6
    torch.testing.assert_close(z[kept], (2 * z0).expand(40, -1, -1)[kept])  # survivors scaled by 1/(1-p)
    assert not torch.equal(kept[0], kept[1])  # each output position its own mask


@pytest.mark.parametrize("centre_dropout", [True, False])
def test_embedding_dropout_reaches_the_initial_centres(centre_dropout, monkeypatch):
    """Training: the stack's embedding dropout runs on (R, k, d) copies of the initial centres, and those
    copies give the selection logits and the layer-0 centre queries; the switch skips the dropout."""
    import sgp4sr.models.sgp4sr as sgp4sr_module

    model = build(dropout=0.5, centre_dropout=centre_dropout).train()
    logits, firsts, dropped, queries = _record_logits(monkeypatch), [], [], []
    mix = sgp4sr_module.centre_mix
    monkeypatch.setattr(sgp4sr_module, "centre_mix", lambda *args: firsts.append(args[2]) or mix(*args))
    stack = model.stacks["shared"]
    stack.dropout.register_forward_hook(lambda mod, args, out: dropped.append((args[0], out)))
    stack.layers[0].attn_norm.register_forward_hook(lambda mod, args, out: queries.append(args[0]))
    batch = onepass_batch(SEQS)
    model.calculate_loss(batch)
    shape = (int((batch.target != 0).sum()), 3, 16)  # (R, k, d)
    on_centres = [(x, out) for x, out in dropped if x.shape == shape]
    assert len(dropped) == 1 + len(model.modalities) + len(on_centres)  # the branch inputs: one embed per branch
    assert len(on_centres) == (len(model.modalities) if centre_dropout else 0)
    centre_queries = queries[1:]  # the first call normalises the sequence branches
    if not centre_dropout:  # one shared (k, d) set of initial centres
        assert [q.shape for q in centre_queries] == [shape[1:]] * len(model.modalities)
        return
    for (x, out), lg, first, q in zip(on_centres, logits, firsts, centre_queries, strict=True):
        assert (out == 0).any() and torch.equal(x[0], x[-1])  # a dropped-out copy of the same centres per row
        torch.testing.assert_close(lg, torch.einsum("rd,rkd->rk", first, out))
        assert torch.equal(q, out)


def test_checkpointed_chunks_replay_the_centre_dropout(monkeypatch):
    """With dropout drawn inside checkpointed chunks, the recomputed backward sees the same masks:
    loss and gradients equal those of the same chunks run without checkpointing."""
    results = []
    for replay in (True, False):
        if not replay:
            monkeypatch.setattr(centres_module, "checkpoint", lambda fn, *args, **kwargs: fn(*args))
        model = build(dropout=0.5, centre_chunk=7).train()
        torch.manual_seed(5)
        loss = model.calculate_loss(onepass_batch(SEQS))
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (loss0, grads0), (loss1, grads1) = results
    torch.testing.assert_close(loss0, loss1)
    for a, b in zip(grads0, grads1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# --- 2. no forward LayerNorm in the centre attention ---------------------------------------------------


@pytest.mark.parametrize("centre_ffn_norm", [False, True])
def test_centre_attention_calls_no_forward_layernorm(centre_ffn_norm):
    """Forward hooks count the calls of every layer's ``LN_f``: once per layer for the sequence branches
    (they run as one batch); the centre attention adds one per modality only with ``centre_ffn_norm``."""
    model = build(centre_ffn_norm=centre_ffn_norm).eval()
    calls = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            calls[name] = 0
            module.register_forward_hook(lambda mod, args, out, name=name: calls.__setitem__(name, calls[name] + 1))
    model.full_sort_predict(Batch(left_pad(SEQS)))
    n_mod = len(model.modalities)
    for layer in range(model.n_layers):
        prefix = f"stacks.shared.layers.{layer}"
        assert calls[f"{prefix}.ffn_norm"] == 1 + (n_mod if centre_ffn_norm else 0)
        assert calls[f"{prefix}.attn_norm"] == 1 + n_mod  # LN_a makes the centre queries, as in the code


# --- 3. initialisation ---------------------------------------------------------------------------------

D = 64  # 4096 weights per d x d map: enough for the spread checks below


def _linears(model: nn.Module, suffix: str) -> list[nn.Linear]:
    return [m for name, m in model.named_modules() if name.endswith(suffix) and isinstance(m, nn.Linear)]


def _spread(weights: list[torch.Tensor]) -> tuple[float, float]:
    w = torch.cat([x.detach().flatten() for x in weights])
    return float(w.std()), float(w.abs().max())


def test_code_init_distributions():
    model = build(hidden_size=D, heads=2)  # the default scheme: sgp4sr_code
    std, top = _spread([model.item_embedding.weight[1:], model.stacks["shared"].positions.weight])
    assert std == pytest.approx(0.02, rel=0.1) and top > 2.5 * 0.02  # plain normal, not truncated at 2 std
    assert not model.item_embedding.weight[0].any()
    out = _linears(model, "attn.out_proj")
    std, top = _spread([m.weight for m in out])
    assert std == pytest.approx(0.02, rel=0.1) and top > 2.5 * 0.02
    bound = math.sqrt(6 / (D + 3 * D))  # xavier over the packed (3d, d) in_proj_weight
    qkv = [m for s in ("q_proj", "k_proj", "v_proj") for m in _linears(model, s)]
    std, top = _spread([m.weight for m in qkv])
    assert top <= bound and top > 0.98 * bound and std == pytest.approx(bound / math.sqrt(3), rel=0.05)
    ffn = _linears(model, "ffn.net.0") + _linears(model, "ffn.net.3")  # Conv1d(k=1) = nn.Linear default
    std, top = _spread([m.weight for m in ffn])
    assert top <= D ** -0.5 and std == pytest.approx(D ** -0.5 / math.sqrt(3), rel=0.05)
    std, top = _spread([m.bias for m in ffn])
    assert 0.9 * D ** -0.5 < top <= D ** -0.5
    assert all(not m.bias.any() for m in out + qkv)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            assert (m.weight == 1).all() and not m.bias.any()


def test_trunc_normal_switch_and_other_models_keep_their_init():
    from sgp4sr.models.registry import get_model_class

    old = build(hidden_size=D, heads=2, init_scheme="trunc_normal")
    sasrec = get_model_class("sasrec")(ModelContext(n_items=200, max_len=8), hidden_size=D, heads=2)
    for model in (old, sasrec):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        std, top = _spread([m.weight for m in linears])
        assert top <= 2 * 0.02 and std == pytest.approx(0.02 * 0.88, rel=0.1)  # normal truncated at +-2 std
        assert all(not m.bias.any() for m in linears)
    with pytest.raises(ValueError, match="init scheme"):
        build(init_scheme="xavier")


# --- 4. k-means as the code ----------------------------------------------------------------------------


@pytest.fixture()
def kmeans_calls(monkeypatch) -> list[dict]:
    """The keyword arguments of every ``MiniBatchKMeans`` the centre builder creates."""
    import sgp4sr.graphs.centres as module

    calls = []

    class Recording(module.MiniBatchKMeans):
        def __init__(self, **kwargs):
            calls.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(module, "MiniBatchKMeans", Recording)
    return calls


def _features(n: int = 300, width: int = 6) -> np.ndarray:
    f = np.random.default_rng(0).normal(size=(n, width)).astype(np.float32)
    f[0] = 0
    return f


def test_kmeans_is_the_code_call_by_default(kmeans_calls):
    from sklearn.cluster import MiniBatchKMeans

    from sgp4sr.graphs.centres import build_centres

    feats = _features()
    got = build_centres(feats, 5, seed=3)
    assert kmeans_calls == [{"n_clusters": 5, "random_state": 3, "init_size": 1024, "batch_size": 1024}]
    want = MiniBatchKMeans(5, init_size=1024, batch_size=1024, random_state=3).fit_predict(feats[1:].astype(np.float64))
    np.testing.assert_array_equal(got.labels[1:], want)
    build_centres(feats, 5, seed=3, kmeans="best_of_3")
    assert kmeans_calls[1] == {"n_clusters": 5, "random_state": 3, "batch_size": 1024, "n_init": 3, "max_iter": 100}
    build_centres(feats, 5, seed=3, max_iter=7)  # single arguments still override
    assert kmeans_calls[2]["max_iter"] == 7 and kmeans_calls[2]["init_size"] == 1024
    with pytest.raises(ValueError, match="kmeans"):
        build_centres(feats, 5, seed=3, kmeans="lloyd")


def test_centres_cli_passes_the_kmeans_setting(kmeans_calls, tmp_path):
    from sgp4sr.cli.main import main
    from sgp4sr.graphs.centres import KMEANS

    np.save(tmp_path / "f.npy", _features())
    base = ["graphs", "centres", "--features", str(tmp_path / "f.npy"), "--k", "4", "--seed", "1"]
    assert main([*base, "--out", str(tmp_path / "default.npz")]) == 0
    for setting in KMEANS:  # the CLI's choices are the builder's settings
        assert main([*base, "--out", str(tmp_path / f"{setting}.npz"), "--kmeans", setting]) == 0
    assert [c.get("n_init") for c in kmeans_calls] == [None] + [KMEANS[s].get("n_init") for s in KMEANS]
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path / "x.npz"), "--kmeans", "lloyd"])


# --- 5. ranking on float32 scores ----------------------------------------------------------------------


class _NearTies(SequentialRecommender):
    """Scores 1.0, 1.001, 1.002 for items 1-3 from one matmul: distinct in float32, equal in bf16."""

    def __init__(self) -> None:
        super().__init__(ModelContext(n_items=5, max_len=4))
        self.table = nn.Parameter(torch.tensor([[0.0], [1.0], [1.001], [1.002], [0.5]]))
        self.dtypes: list[torch.dtype] = []

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        scores = torch.ones(batch.seq.size(0), 1) @ self.table.T
        self.dtypes.append(scores.dtype)
        return self.mask_padding_scores(scores)


@pytest.mark.parametrize("fp32_scores", [True, False])
def test_ranking_uses_float32_scores_under_autocast(fp32_scores, monkeypatch):
    """CPU bf16 autocast requested (as the engine does on CUDA): the scores stay float32 and tie-free unless
    ``fp32_scores=False``, whose bf16 matmul ties items 1-3 and ranks the best one third (pessimistic)."""
    import sgp4sr.engine.evaluate as evaluate

    ranked, original = [], evaluate.ranks_from_scores
    monkeypatch.setattr(evaluate, "ranks_from_scores", lambda s, *a: ranked.append(s.clone()) or original(s, *a))
    model = _NearTies()
    ranks = evaluate.rank_users(model, [np.array([1]), np.array([4, 2])], np.array([3, 3]), 4, 8,
                                torch.device("cpu"), autocast=True, fp32_scores=fp32_scores)
    (scores,) = ranked
    assert scores.dtype == torch.float32
    if fp32_scores:
        assert model.dtypes == [torch.float32] and scores[:, 1:4].unique().numel() == 3
        assert ranks.tolist() == [1, 1]
    else:
        assert model.dtypes == [torch.bfloat16] and scores[:, 1:4].unique().numel() == 1
        assert ranks.tolist() == [3, 3]


def test_sgp4sr_scores_are_float32_under_autocast():
    from sgp4sr.engine.evaluate import rank_users

    model = build(make_ctx())
    dtypes, predict = [], model.full_sort_predict

    def recording(batch: Batch) -> torch.Tensor:  # full_sort_predict is not forward: no hook, wrap it
        scores = predict(batch)
        dtypes.append(scores.dtype)
        return scores

    model.full_sort_predict = recording
    inputs = [np.asarray(s) for s in SEQS]
    for fp32_scores in (True, False):
        rank_users(model, inputs, np.array([1, 2, 3, 4]), 8, 8, torch.device("cpu"), autocast=True,
                   fp32_scores=fp32_scores)
    assert dtypes == [torch.float32, torch.bfloat16]
