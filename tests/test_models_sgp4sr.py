"""SGP4SR model: shapes, PAD masking, padding invariance, one-pass == prefix, gradients, ablations.

Everything runs on a tiny context built here with scipy (11 items, 2 modalities
plus the ``fused`` one of ``wo_mul``), so the whole file takes seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.registry import get_model_class
from sgp4sr.models.sgp4sr import SGP4SR

N_ITEMS = 12  # 11 real items + padding
MAX_LEN = 8
SMALL = dict(hidden_size=16, layers=2, heads=2, dropout=0.0)
SEQS = [[3, 5, 7, 2, 9], [1, 4], [11, 10, 6, 8, 2, 3, 5], [7]]


def _modal_graph(feats: np.ndarray, h: int = 3) -> sp.csr_matrix:
    """Top-h cosine neighbours (self included, never padding), 1/h each: the shape of A_m."""
    x = feats[1:] / np.linalg.norm(feats[1:], axis=1, keepdims=True)
    top = np.argsort(-(x @ x.T), axis=1)[:, :h] + 1
    rows = np.repeat(np.arange(1, N_ITEMS), h)
    return sp.csr_matrix((np.full(rows.size, 1.0 / h), (rows, top.ravel())), shape=(N_ITEMS, N_ITEMS))


def _centres(rng: np.random.Generator, k: int) -> sp.csr_matrix:
    labels = np.concatenate([np.arange(k), rng.integers(0, k, N_ITEMS - 1 - k)])
    sizes = np.bincount(labels, minlength=k)
    return sp.csr_matrix((1.0 / sizes[labels], (labels, np.arange(1, N_ITEMS))), shape=(k, N_ITEMS))


def _cooccurrence(seqs) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for s in seqs:
        for j in range(len(s)):
            for k in range(j):
                rows += [s[k], s[j]]
                cols += [s[j], s[k]]
                vals += [1.0 / (j - k)] * 2
    w = sp.csr_matrix((vals, (rows, cols)), shape=(N_ITEMS, N_ITEMS))
    norms = np.sqrt(np.asarray(w.multiply(w).sum(1)).ravel())
    return sp.csr_matrix(sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0)) @ w)


def make_ctx(seed: int = 0, k: int = 3) -> ModelContext:
    rng = np.random.default_rng(seed)
    feats = {}
    for m, width in (("image", 10), ("text", 6)):
        f = rng.normal(size=(N_ITEMS, width)).astype(np.float32)
        f[0] = 0
        feats[m] = f
    norm = {m: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) for m, f in feats.items()}
    feats["fused"] = np.concatenate([norm["image"], norm["text"]], axis=1).astype(np.float32)
    return ModelContext(
        n_items=N_ITEMS, max_len=MAX_LEN, features=feats, cooccurrence=_cooccurrence(SEQS),
        modal_graphs={m: _modal_graph(f) for m, f in feats.items()},
        centres={m: _centres(rng, k) for m in feats},
    )


def build(ctx: ModelContext | None = None, seed: int = 0, **kwargs) -> SGP4SR:
    torch.manual_seed(seed)
    return SGP4SR(ctx or make_ctx(), **{**SMALL, **kwargs})


def left_pad(seqs, t: int = MAX_LEN) -> torch.Tensor:
    out = torch.zeros(len(seqs), t, dtype=torch.long)
    for r, s in enumerate(seqs):
        out[r, t - len(s):] = torch.tensor(s)
    return out


def onepass_batch(seqs) -> Batch:
    """Inputs s[:-1], a target (the next item) at every real position."""
    return Batch(left_pad([s[:-1] for s in seqs]), left_pad([s[1:] for s in seqs]))


def prefix_batch(seqs) -> Batch:
    """Every prefix of s[:-1] as its own row, its next item at the last position."""
    rows, targets = [], []
    for s in seqs:
        for j in range(1, len(s)):
            rows.append(s[:j])
            targets.append([s[j]])
    return Batch(left_pad(rows), left_pad(targets))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: thread hand-offs on the shared 2-core machine cost more than the maths."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def vectors(model: SGP4SR, batch: Batch) -> torch.Tensor:
    """All user vectors (fused and per modality) side by side, one row per output position.

    They are LayerNorm outputs (order 1), so comparing them is far stricter than
    comparing losses of a freshly initialised model (near-uniform logits).
    """
    return torch.cat(list(model.user_vectors(batch).values()), dim=1)


VARIANTS = [
    {}, {"ablations": ("wo_coo",)}, {"ablations": ("wo_cgc",)}, {"ablations": ("wo_cip",)},
    {"ablations": ("wo_mul",)}, {"ablations": ("wo_c2c",)}, {"shared_encoder": False},
    {"input_layernorm": True}, {"centre_mask": "causal_bug"}, {"centre_chunk": 7}, {"heads": 4},
    {"centre_scale_power": 0.0}, {"centre_ffn_norm": True}, {"init_scheme": "trunc_normal"},
]


def test_registered_by_name():
    assert get_model_class("sgp4sr") is SGP4SR


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda kw: "-".join(map(str, kw.values())) or "default")
def test_shapes_pad_and_onepass_equals_prefix(kwargs):
    """One row per user with a target at every position = one row per prefix, position by position.

    The centre states of the example ending at j must see only positions <= j
    for this to hold (the prefix rows never contain later items).
    """
    model = build(**kwargs).eval()
    onepass, prefix = onepass_batch(SEQS), prefix_batch(SEQS)
    loss = model.calculate_loss(onepass)
    assert loss.dim() == 0 and torch.isfinite(loss)
    scores = model.full_sort_predict(Batch(left_pad(SEQS)))
    assert scores.shape == (len(SEQS), N_ITEMS)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    n_examples = sum(len(s) - 1 for s in SEQS)
    got, want = vectors(model, onepass), vectors(model, prefix)
    assert got.shape == (n_examples, 16 * (1 + len(model.modalities)))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, model.calculate_loss(prefix), rtol=1e-5, atol=1e-6)


def test_score_terms_add_up_to_the_score():
    model = build().eval()
    batch = Batch(left_pad(SEQS))
    assert model.score_terms() == ("id", "image", "text")
    full = model.full_sort_predict(batch)
    parts = []
    for term in model.score_terms():
        with model.scoring_only(term):
            parts.append(model.full_sort_predict(batch)[:, 1:])
    assert model.score_term is None
    assert not torch.allclose(parts[0], parts[1])
    torch.testing.assert_close(sum(parts), full[:, 1:], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="no score term 'audio'"):
        with model.scoring_only("audio"):
            pass


def test_future_positions_would_leak_without_the_cumulative_mask(monkeypatch):
    """Control for the test above: letting the centres see every position breaks the equality."""
    import sgp4sr.models.sgp4sr_centres as module

    model = build().eval()
    right = vectors(model, onepass_batch(SEQS))
    original = module.centre_key_mask

    def leaky(seq_, rows_b, rows_j, k, mode="padding"):
        return original(seq_, rows_b, torch.full_like(rows_j, seq_.size(1) - 1), k, mode)

    monkeypatch.setattr(module, "centre_key_mask", leaky)
    leaked = vectors(model, onepass_batch(SEQS))
    assert (leaked - right).abs().max() > 1e-3


@pytest.mark.parametrize("ffn_norm", [False, True])  # the code (no LN_f before the feed-forward) / the switch
@pytest.mark.parametrize("heads", [2, 8])  # 2 x 5 < 16: output map folded into the values; 8 x 5 >= 16: fused SDPA
def test_centre_step_is_the_layers_attention_over_each_prefix(heads, ffn_norm):
    from sgp4sr.models.layers import SASRecLayer
    from sgp4sr.models.sgp4sr_centres import centre_key_mask, centre_step

    torch.manual_seed(0)
    layer = SASRecLayer(16, heads, 0.0).eval()
    norm = layer.ffn_norm if ffn_norm else torch.nn.Identity()
    seq = left_pad([[3, 4, 5, 6, 7], [8, 9]], 5)
    rows_b, rows_j = torch.tensor([0, 0, 1]), torch.tensor([1, 4, 4])
    x, z = torch.randn(2, 5, 16), torch.randn(3, 4, 16)
    allowed = centre_key_mask(seq, rows_b, rows_j, 4)
    got = centre_step(layer, z, x, rows_b, allowed, ffn_norm)
    q = layer.attn_norm(z)
    want = norm(q + layer.attn(q, x[rows_b], x[rows_b], allowed))  # the shared MHA, keys up to position j only
    torch.testing.assert_close(got, want + layer.ffn(want), rtol=1e-4, atol=1e-5)
    shared = centre_step(layer, z[0], x, rows_b, allowed, ffn_norm)  # layer-0 queries, the same for every row
    q0 = layer.attn_norm(z[0]).expand(3, -1, -1)
    want0 = norm(q0 + layer.attn(q0, x[rows_b], x[rows_b], allowed))
    torch.testing.assert_close(shared, want0 + layer.ffn(want0), rtol=1e-4, atol=1e-5)


def test_chunked_centres_give_the_same_loss_and_gradients():
    """Checkpointed chunks of output positions (small ``centre_chunk``) change memory, not results."""
    batch = onepass_batch(SEQS)
    results = []
    for chunk in (0, 7):  # k = 3: 7 centre rows = 2 output positions per chunk
        model = build(centre_chunk=chunk).train()
        torch.manual_seed(5)  # same Gumbel draws
        loss = model.calculate_loss(batch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss0, grads0), (loss1, grads1) = results
    torch.testing.assert_close(loss0, loss1)
    assert grads0.keys() == grads1.keys() and any("layers.1.ffn" in n for n in grads0)
    for name in grads0:
        torch.testing.assert_close(grads0[name], grads1[name], rtol=1e-4, atol=1e-6, msg=name)
    model.eval()
    torch.testing.assert_close(vectors(model, batch), vectors(build(centre_chunk=0).eval(), batch), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"ablations": ("wo_c2c",)}, {"centre_mask": "causal_bug"}])
def test_padding_invariance(kwargs):
    model = build(**kwargs).eval()
    short, long = Batch(left_pad(SEQS, 7)), Batch(left_pad(SEQS, MAX_LEN))
    torch.testing.assert_close(vectors(model, short), vectors(model, long), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.full_sort_predict(short), model.full_sort_predict(long), rtol=1e-4, atol=1e-6)
    one = Batch(left_pad(SEQS[1:2], MAX_LEN))  # the other rows of a batch do not matter
    torch.testing.assert_close(vectors(model, one), vectors(model, long)[1:2], rtol=1e-4, atol=1e-5)


def test_evaluation_deterministic_training_samples_gumbel():
    model = build()
    batch = Batch(left_pad(SEQS))
    model.eval()
    torch.testing.assert_close(vectors(model, batch), vectors(model, batch), rtol=0, atol=0)
    torch.testing.assert_close(model.full_sort_predict(batch), model.full_sort_predict(batch), rtol=0, atol=0)
    model.train()  # dropout is 0: only the Gumbel noise differs
    assert (vectors(model, batch) - vectors(model, batch)).abs().max() > 1e-4
    noisy = build(eval_gumbel=True).eval()
    assert (vectors(noisy, batch) - vectors(noisy, batch)).abs().max() > 1e-4
    no_centres = build(ablations=("wo_cip",)).train()  # nothing else is random
    torch.testing.assert_close(vectors(no_centres, batch), vectors(no_centres, batch), rtol=0, atol=0)


def _user_grad(model: SGP4SR, modality: str | None) -> torch.Tensor:
    """d(user vectors)/dE: reaches E only through the graphs (the scoring against E is left out)."""
    out = model.user_vectors(Batch(left_pad(SEQS[:1])))["u_s" if modality is None else modality]
    (grad,) = torch.autograd.grad(out.square().sum(), model.item_embedding.weight, allow_unused=True)
    return torch.zeros_like(model.item_embedding.weight) if grad is None else grad


def test_gradients_reach_id_embeddings_through_graphs():
    ctx = make_ctx()
    model = build(ctx).train()
    for modality, graph in (("image", ctx.modal_graphs["image"]), (None, ctx.cooccurrence)):
        touched = _user_grad(model, modality).abs().sum(1) > 0
        # the neighbours of the sequence's items (and, for the modality, its centres' members) get gradient
        reach = np.asarray(graph[SEQS[0]].sum(0)).ravel() > 0
        assert touched[torch.from_numpy(reach)].all()
        assert not touched[0]
    no_graph = build(ctx, ablations=("wo_cgc",)).train()
    assert _user_grad(no_graph, "image").abs().sum() == 0  # w/o CGC: modality branch never reads E


def test_parameters_per_ablation():
    keys = {name: set(build(ablations=(name,) if name else ()).state_dict()) for name in
            ("", "wo_coo", "wo_cgc", "wo_cip", "wo_mul", "wo_c2c")}
    assert keys["wo_coo"] == keys[""] == keys["wo_cip"] == keys["wo_mul"]
    mapped = {k for k in keys["wo_cgc"] - keys[""]}
    assert mapped and all(k.startswith("feature_maps.") for k in mapped) and keys[""] <= keys["wo_cgc"]
    assert keys["wo_c2c"] == keys["wo_cgc"]
    separate = set(build(shared_encoder=False).state_dict())
    assert {k.split(".")[1] for k in separate if k.startswith("stacks.")} == {"id", "image", "text"}


def _scores(ctx: ModelContext, **kwargs) -> torch.Tensor:
    """User vectors and scores of a fresh model (same seed, so same initial weights) on ``ctx``."""
    model = build(ctx, **kwargs).eval()
    batch = Batch(left_pad(SEQS))
    return torch.cat([vectors(model, batch), model.full_sort_predict(batch)[:, 1:]], dim=1)


def test_ablations_read_only_their_inputs():
    ctx = make_ctx()
    other = make_ctx(seed=1)
    # w/o COO changes only the graph files: the same graphs give the same model
    torch.testing.assert_close(_scores(ctx), _scores(ctx, ablations=("wo_coo",)))
    # w/o CIP ignores the centres; the default reads them
    swapped = make_ctx()
    swapped.centres = other.centres
    torch.testing.assert_close(_scores(ctx, ablations=("wo_cip",)), _scores(swapped, ablations=("wo_cip",)))
    assert not torch.allclose(_scores(ctx), _scores(swapped))
    # w/o CGC never reads the modal graphs (they may be absent); the default does
    no_graphs = make_ctx()
    no_graphs.modal_graphs = {}
    torch.testing.assert_close(_scores(ctx, ablations=("wo_cgc",)), _scores(no_graphs, ablations=("wo_cgc",)))
    regraphed = make_ctx()
    regraphed.modal_graphs = {m: _modal_graph(f, h=2) for m, f in ctx.features.items()}
    assert not torch.allclose(_scores(ctx), _scores(regraphed))
    # w/o MUL reads only the fused modality
    only_fused = make_ctx()
    only_fused.modal_graphs = {"fused": ctx.modal_graphs["fused"]}
    only_fused.centres = {"fused": ctx.centres["fused"]}
    torch.testing.assert_close(_scores(ctx, ablations=("wo_mul",)), _scores(only_fused, ablations=("wo_mul",)))
    assert build(ctx, ablations=("wo_mul",)).weights == {"fused": 1.0}
    assert build(ctx).weights == pytest.approx({"image": 0.1, "text": 0.9})
    # w/o C2C = w/o CGC + w/o CIP
    torch.testing.assert_close(_scores(ctx, ablations=("wo_c2c",)), _scores(ctx, ablations=("wo_cgc", "wo_cip")))
    # the remaining switches each change the output
    base = _scores(ctx)
    for kwargs in ({"centre_mask": "causal_bug"}, {"beta": 1.0}, {"alpha": 0.0}, {"input_layernorm": True},
                   {"centre_scale_power": 0.0}, {"centre_ffn_norm": True}, {"init_scheme": "trunc_normal"}):
        assert not torch.allclose(base, _scores(ctx, **kwargs)), kwargs


def test_clear_errors():
    ctx = make_ctx()
    with pytest.raises(ValueError, match="unknown ablation"):
        build(ctx, ablations=("wo_xyz",))
    broken = make_ctx()
    broken.centres = {"image": ctx.centres["image"]}
    with pytest.raises(ValueError, match=r"centres\['text'\]"):
        build(broken)
    broken = make_ctx()
    broken.modal_graphs = {m: g for m, g in ctx.modal_graphs.items() if m != "fused"}
    with pytest.raises(ValueError, match="fused"):
        build(broken, ablations=("wo_mul",))
    with pytest.raises(ValueError, match="centre_mask"):
        build(ctx, centre_mask="causal")
    with pytest.raises(ValueError, match="max_len"):
        build(ctx).full_sort_predict(Batch(left_pad(SEQS, MAX_LEN + 1)))


# --- end to end through the engine and the graph builders ---------------------------------------------

PLANTED_USERS, GROUPS, GROUP_SIZE = 240, 4, 15


def _write_planted(root) -> dict:
    """A split where the next item follows the last one in a cyclic walk through one item group,
    features that reveal the group, and the graph stage's artefacts built from them."""
    from sgp4sr.data.load import load_split
    from sgp4sr.graphs import build_centres, build_cooccurrence, build_modal_graph, save_centres, save_sparse

    rng = np.random.default_rng(0)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    rows: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for u in range(PLANTED_USERS):
        g, length, start = rng.integers(GROUPS), rng.integers(5, 12), rng.integers(GROUP_SIZE)
        seq = [str(g * GROUP_SIZE + (start + k) % GROUP_SIZE + 1) for k in range(length)]
        train = seq[:-2]
        rows["train"] += [f"{u}\t{' '.join(train[:j])}\t{train[j]}" for j in range(1, len(train))]
        rows["valid"].append(f"{u}\t{' '.join(train)}\t{seq[-2]}")
        rows["test"].append(f"{u}\t{' '.join(train + [seq[-2]])}\t{seq[-1]}")
    data = root / "data"
    data.mkdir()
    for part, lines in rows.items():
        (data / f"planted.{part}.inter").write_text(header + "\n".join(lines) + "\n")
    split = load_split(data)
    group = np.array([-1] + [(int(tok) - 1) // GROUP_SIZE for tok in split.item_tokens[1:]])
    features, graphs = root / "features", root / "graphs" / "clean"
    features.mkdir()
    graphs.mkdir(parents=True)
    w = build_cooccurrence(split.train_seqs, split.n_items)
    save_sparse(root / "graphs" / "cooccurrence.npz", w)
    settings = {"knn_k": 5, "mu_m": 2.0, "mu_o": 0.4, "centres": GROUPS}
    for m, width in (("image", 12), ("text", 8)):
        f = rng.normal(scale=0.3, size=(split.n_items, width)).astype(np.float32)
        f[np.arange(1, split.n_items), group[1:]] += 1.0
        f[0] = 0
        np.save(features / f"{m}.npy", f)
        save_sparse(graphs / f"{m}_H5_m2_o0.4.npz", build_modal_graph(f, w, 5, 2.0, 0.4).graph)
        save_centres(graphs / f"{m}_centres_k{GROUPS}_s7.npz", build_centres(f, GROUPS, seed=7))
    return {"data": data, "features": features, "graphs": root / "graphs", "graph_settings": settings,
            "centres_seed": 7, "split": split}


def test_training_through_the_engine_beats_popularity(tmp_path):
    from sgp4sr.engine.evaluate import metrics_from_ranks, ranks_from_scores
    from sgp4sr.engine.run import RunSpec, run_training

    planted = _write_planted(tmp_path)
    split = planted.pop("split")
    counts = np.bincount(np.concatenate(split.train_seqs + [split.valid_items]), minlength=split.n_items)
    popular = ranks_from_scores(torch.tensor(counts, dtype=torch.float32).repeat(split.n_users, 1),
                                torch.from_numpy(split.test_items)).numpy()
    training = {"epochs": 3, "patience": 3, "batch_size": 32, "eval_batch_size": 128, "lr": 0.005, "max_len": 8,
                "topk": [5, 10], "valid_metric": "recall@10", "device": "cpu"}
    spec = RunSpec(out=tmp_path / "run", model="sgp4sr", training=training, threads=1,
                   model_params={"hidden_size": 16, "layers": 1, "heads": 2, "dropout": 0.1},
                   modalities=["image", "text"], **planted)
    metrics = run_training(spec)
    baseline = metrics_from_ranks(popular, [10])["recall@10"]
    assert metrics["test"]["recall@10"] > baseline + 0.2, (metrics["test"], baseline)
    assert sorted(metrics["test_by_score_term"]) == ["id", "image", "text"]
    assert all(0 <= m["recall@10"] <= 1 for m in metrics["test_by_score_term"].values())
    ranks = pd.read_parquet(tmp_path / "run" / "ranks.parquet")  # each term's own ranks, for the tail tables
    for term, term_metrics in metrics["test_by_score_term"].items():
        assert metrics_from_ranks(ranks[f"test_rank_{term}"].to_numpy(), [10]) == \
            {k: term_metrics[k] for k in ("recall@10", "ndcg@10")}


def test_a_variants_model_keys_reach_the_model(tmp_path):
    from sgp4sr.engine.run import RunSpec, prepare

    planted = _write_planted(tmp_path)
    planted.pop("split")
    spec = RunSpec(out=tmp_path / "run", model="sgp4sr", variant="beta~1+input_ln~true", threads=1,
                   training={"max_len": 8, "device": "cpu"},
                   model_params={"hidden_size": 16, "layers": 1, "heads": 2, "beta": 0.6},
                   modalities=["image", "text"], **planted)
    prep = prepare(spec)
    assert prep.model.beta == 1.0  # the variant's value wins over the params'
    assert all(isinstance(stack.input_norm, torch.nn.LayerNorm) for stack in prep.model.stacks.values())
    assert prep.resolved["model_params"]["beta"] == 1.0  # and is what the checkpoint fingerprints
