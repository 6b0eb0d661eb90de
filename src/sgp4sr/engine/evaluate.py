"""Full-ranking evaluation: every item is a candidate (padding excluded), ties count against the target.

The rank of the target is ``1 + #{items i != target : score_i >= score_target}``
(pessimistic ties: a model that gives every item the same score gets the worst
rank, not a lucky one). With ``remove_seen`` the items of the input sequence
are removed from the candidates, except the target itself when it was seen
before (a repeat purchase stays rankable). Recall@K and NDCG@K follow the spec
§7 and are averaged over users. Scores are float32 (spec §4): bf16 keeps 8
significant bits, so nearby scores would become ties that count against the target.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from sgp4sr.engine.sequences import left_pad, make_batch
from sgp4sr.models.base import SequentialRecommender


def ranks_from_scores(scores: torch.Tensor, target: torch.Tensor, seen: torch.Tensor | None = None,
                      item_chunk: int | None = None) -> torch.Tensor:
    """1-based pessimistic ranks (B,) of ``target`` (B,) among ``scores`` (B, n_items).

    Column 0 (padding) is never a candidate. ``seen`` (B, t) items to remove
    (0 entries ignored). ``item_chunk`` bounds the (B, chunk) comparison
    temporaries for large catalogues. ``scores`` is modified in place.
    """
    scores[:, 0] = float("-inf")
    rows = torch.arange(scores.size(0), device=scores.device)
    target_score = scores[rows, target].clone()
    if seen is not None:
        scores.scatter_(1, seen, float("-inf"))
        scores[:, 0] = float("-inf")
    scores[rows, target] = float("-inf")  # the target does not outrank itself
    if bool(torch.isnan(target_score).any()):
        raise FloatingPointError("model produced NaN scores for a target item")
    chunk = item_chunk or scores.size(1)
    higher = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
    for start in range(0, scores.size(1), chunk):
        higher += (scores[:, start:start + chunk] >= target_score[:, None]).sum(1)
    return higher + 1


def metrics_from_ranks(ranks: np.ndarray, topk: Sequence[int]) -> dict[str, float]:
    """``recall@K`` and ``ndcg@K`` averaged over users, from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in topk:
        hit = ranks <= k
        out[f"recall@{k}"] = float(hit.mean()) if len(ranks) else math.nan
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean()) if len(ranks) else math.nan
    return out


def eval_inputs(train_seqs: Sequence[np.ndarray], valid_items: np.ndarray, which: str) -> list[np.ndarray]:
    """Valid input = training sequence; test input = training sequence + validation item."""
    if which == "valid":
        return [np.asarray(s) for s in train_seqs]
    if which == "test":
        return [np.append(np.asarray(s, dtype=np.int64), int(v)) for s, v in zip(train_seqs, valid_items)]
    raise ValueError(f"which must be 'valid' or 'test', got {which!r}")


@torch.no_grad()
def rank_users(model: SequentialRecommender, inputs: Sequence[np.ndarray], targets: np.ndarray, max_len: int,
               batch_size: int, device: torch.device, remove_seen: bool = False,
               item_chunk: int | None = None, autocast: bool = False,
               times: Sequence[np.ndarray] | None = None, fp32_scores: bool = True) -> np.ndarray:
    """Ranks (n_users,) of each user's target given their input sequence.

    ``times`` (optional) are the inputs' interaction times, passed to the
    model as ``Batch.timestamps`` (time-aware models such as HM4SR).

    ``fp32_scores`` (default) runs the model's forward pass with autocast
    off, whatever ``autocast`` asks and whatever autocast region encloses the
    call, so every model's final score matmul is float32 (casting bf16 scores
    afterwards would keep their ties). ``fp32_scores=False`` restores the
    earlier path: the whole forward, scores included, under bf16 autocast when
    ``autocast`` is set (the engine sets it on CUDA).

    Users are processed in order of input length so each batch carries little
    padding; the ranks are returned in user order.
    """
    was_training = model.training
    model.eval()
    padded, lengths = left_pad(inputs, max_len)
    padded_times = None if times is None else left_pad(times, max_len, np.int64)[0]
    targets = np.asarray(targets, dtype=np.int64)
    ranks = np.zeros(len(inputs), dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = make_batch(padded[idx], user=idx, lengths=lengths[idx],
                               times=None if padded_times is None else padded_times[idx]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast and not fp32_scores):
                scores = model.full_sort_predict(batch)
            scores = scores.float()
            seen = None
            if remove_seen:  # the whole history, not only the last max_len items the model saw
                full = [inputs[i] for i in idx]
                seen = torch.from_numpy(left_pad(full, max(1, max(len(x) for x in full)))[0]).long().to(device)
            target = torch.from_numpy(targets[idx]).to(device)
            ranks[idx] = ranks_from_scores(scores, target, seen, item_chunk).cpu().numpy()
    finally:
        model.train(was_training)
    return ranks
