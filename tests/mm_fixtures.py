"""Tiny planted data and shared checks for the multimodal baselines' tests.

The planted shop: items fall into clusters whose image and text features
share a cluster signal; each user stays in one cluster and mostly walks
through its items in a fixed cyclic order, so the next item is predictable
from the last one and its features while popularity is almost flat. Any
working sequential model beats the popularity ranking by a wide margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender


@dataclass
class Planted:
    ctx: ModelContext
    seqs: torch.Tensor        # (U, T) left-padded training sequences
    times: torch.Tensor       # (U, T) timestamps (seconds), 0 on padding
    test: torch.Tensor        # (U,) next item after each sequence
    test_time: torch.Tensor   # (U,) its timestamp
    labels: np.ndarray        # (n_items,) cluster of each item, -1 for padding


def planted(n_clusters: int = 4, per_cluster: int = 10, n_users: int = 240, max_len: int = 12,
            seed: int = 0, widths: tuple[int, int] = (24, 16)) -> Planted:
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per_cluster + 1
    labels = np.concatenate([[-1], np.repeat(np.arange(n_clusters), per_cluster)])
    features = {}
    for name, width in zip(("image", "text"), widths):
        centres = rng.normal(size=(n_clusters, width))
        feats = centres[np.maximum(labels, 0)] + 0.3 * rng.normal(size=(n_items, width))
        feats[0] = 0.0
        features[name] = feats.astype(np.float32)
    seqs = np.zeros((n_users, max_len), dtype=np.int64)
    times = np.zeros((n_users, max_len), dtype=np.int64)
    test = np.zeros(n_users, dtype=np.int64)
    test_time = np.zeros(n_users, dtype=np.int64)
    for u in range(n_users):
        c = rng.integers(n_clusters)
        length = int(rng.integers(4, max_len + 1))
        pos = int(rng.integers(per_cluster))
        walk = []
        for _ in range(length + 1):
            walk.append(1 + c * per_cluster + pos)
            pos = (pos + 1) % per_cluster if rng.random() < 0.9 else int(rng.integers(per_cluster))
        stamps = 1_600_000_000 + np.cumsum(rng.integers(60, 86_400 * 30, size=length + 1))
        seqs[u, max_len - length:] = walk[:-1]
        times[u, max_len - length:] = stamps[:-1]
        test[u], test_time[u] = walk[-1], stamps[-1]
    ctx = ModelContext(n_items=n_items, max_len=max_len, features=features)
    return Planted(ctx, torch.from_numpy(seqs), torch.from_numpy(times), torch.from_numpy(test),
                   torch.from_numpy(test_time), labels)


def one_pass(data: Planted, rows: torch.Tensor | None = None) -> Batch:
    """Inputs = sequence minus its newest item; a target at every real input position."""
    seqs = data.seqs if rows is None else data.seqs[rows]
    times = data.times if rows is None else data.times[rows]
    inputs = seqs[:, :-1]
    target = seqs[:, 1:] * (inputs != 0)
    return Batch(seq=inputs, target=target, timestamps=times[:, :-1])


def eval_batch(data: Planted, rows: slice | torch.Tensor = slice(None)) -> Batch:
    return Batch(seq=data.seqs[rows], timestamps=data.times[rows])


def recall_at(scores: torch.Tensor, target: torch.Tensor, k: int = 5) -> float:
    top = scores.topk(k, dim=1).indices
    return (top == target[:, None]).any(dim=1).float().mean().item()


def popularity_recall(data: Planted, k: int = 5) -> float:
    counts = torch.bincount(data.seqs.flatten(), minlength=data.ctx.n_items).float()
    counts[0] = -1
    scores = counts.expand(len(data.test), -1)
    return recall_at(scores, data.test, k)


def train_briefly(model: SequentialRecommender, data: Planted, epochs: int = 30, lr: float = 3e-3,
                  batch_size: int = 64, seed: int = 0) -> float:
    """Adam on one-pass batches; returns the test Recall@5 on the planted next items."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    n = len(data.seqs)
    for _ in range(epochs):
        model.train()
        for rows in torch.randperm(n, generator=gen).split(batch_size):
            loss = model.calculate_loss(one_pass(data, rows))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(Batch(seq=data.seqs, timestamps=data.times))
    return recall_at(scores, data.test)


def check_scores(model: SequentialRecommender, data: Planted) -> torch.Tensor:
    """Shape (B, n_items), PAD -inf, every other score finite."""
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(eval_batch(data, slice(0, 7)))
    assert scores.shape == (7, data.ctx.n_items)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()
    return scores


def check_padding_invariance(model: SequentialRecommender, data: Planted, extra: int = 5) -> None:
    """More left padding (and a shorter window than max_len) leaves the scores unchanged."""
    model.eval()
    batch = eval_batch(data, slice(0, 9))
    padded = Batch(seq=torch.nn.functional.pad(batch.seq, (extra, 0)),
                   timestamps=torch.nn.functional.pad(batch.timestamps, (extra, 0)))
    lengths = (batch.seq != 0).sum(1)
    keep = int(lengths.max())
    trimmed = Batch(seq=batch.seq[:, -keep:], timestamps=batch.timestamps[:, -keep:])
    with torch.no_grad():
        base = model.full_sort_predict(batch)
        torch.testing.assert_close(model.full_sort_predict(trimmed), base, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model.full_sort_predict(padded), base, rtol=1e-4, atol=1e-4)


def check_determinism(build: Callable[[], SequentialRecommender], data: Planted) -> None:
    """Same seed, same weights, same training step, same scores."""
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build()
        torch.manual_seed(8)
        loss = model.calculate_loss(one_pass(data, torch.arange(16)))
        loss.backward()
        model.eval()
        with torch.no_grad():
            outs.append((loss.detach(), model.full_sort_predict(eval_batch(data, slice(0, 5)))))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


INTER_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def write_benchmark_split(data: Planted, folder, name: str = "planted") -> None:
    """The planted sequences as a RecBole benchmark split (train prefixes, valid, test) plus
    ``<modality>.npy`` features beside it, so whole engine runs can use them."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for u, (row, nxt) in enumerate(zip(data.seqs.tolist(), data.test.tolist())):
        seq = [str(i) for i in row if i] + [str(nxt)]
        train = seq[:-2]
        rows["train"] += [f"{u}\t{' '.join(train[:j])}\t{train[j]}" for j in range(1, len(train))]
        rows["valid"].append(f"{u}\t{' '.join(train)}\t{seq[-2]}")
        rows["test"].append(f"{u}\t{' '.join(train + [seq[-2]])}\t{seq[-1]}")
    for part, lines in rows.items():
        (folder / f"{name}.{part}.inter").write_text(INTER_HEADER + "\n".join(lines) + "\n")


def synthetic_cache(data: Planted, path, text_layers: int = 7, image_layers: int = 13,
                    widths: tuple[int, int] = (24, 40), seed: int = 0, rows: np.ndarray | None = None) -> str:
    """An IISAN hidden-state cache that carries the planted features through random per-layer
    maps (``rows`` reorders items to a split's indices)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, layers, width in (("text", text_layers, widths[0]), ("image", image_layers, widths[1])):
        feats = data.ctx.features[name] if rows is None else data.ctx.features[name][rows]
        maps = rng.normal(size=(layers, feats.shape[1], width)) / np.sqrt(feats.shape[1])
        out[name] = np.einsum("nf,lfw->nlw", feats, maps).astype(np.float16)
        out[f"{name}_found"] = np.ones(len(feats), bool)
    np.savez(path, **out)
    return str(path)
