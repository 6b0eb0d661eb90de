"""HM4SR (Zhang et al., WWW'25): hierarchical time-aware mixture of experts.

Three streams (item ID, text, image) with positions. Level 1, the interactive
MoE: experts read the concatenation of all streams, and each stream's own
softmax gate mixes them into a residual update of that stream (modalities
inform each other). Level 2, the temporal MoE: a gate on the time embedding
(log-scaled interval buckets + a sinusoidal absolute-time code) mixes
element-wise expert scalings of the concatenated streams. Each stream then has
its own causal Transformer; the next item is scored by the sum of the three
streams' dot products. Auxiliary objectives: category prediction (CP) from
each input item's ID/text/image representations, in-batch sequence-item
contrastive learning on the ID stream (IDCL) and placeholder contrastive
learning (PCL), where a fraction of the text/image positions is replaced by a
placeholder computed from their time embedding.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.layers import causal_padding_mask
from sgp4sr.models.mm_blocks import (EvalTableCache, PostLNEncoder, frozen_table, recbole_init, require_features,
                                     start_positions)
from sgp4sr.models.registry import register

log = logging.getLogger(__name__)

DAY = 86_400.0


class InteractiveMoE(nn.Module):
    """Experts ``S*d -> S*d`` over all streams; stream ``s`` gates them with ``softmax(W_s x_s)``
    and takes its own block, scaled by a learned per-stream weight."""

    def __init__(self, streams: int, hidden_size: int, n_experts: int, init_weight: Sequence[float]) -> None:
        super().__init__()
        self.d = hidden_size
        self.gates = nn.ModuleList(nn.Linear(hidden_size, n_experts) for _ in range(streams))
        self.experts = nn.ModuleList(nn.Linear(streams * hidden_size, streams * hidden_size) for _ in range(n_experts))
        self.weight = nn.Parameter(torch.tensor([float(w) for w in init_weight]))

    def gate_probs(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [gate(x).softmax(dim=-1) for gate, x in zip(self.gates, xs)]

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        joint = torch.cat(list(xs), dim=-1)
        experts = torch.stack([e(joint) for e in self.experts], dim=-2)  # (B, t, E, S*d)
        out = []
        for s, gate in enumerate(self.gate_probs(xs)):
            block = experts[..., s * self.d:(s + 1) * self.d]
            out.append(self.weight[s] * (gate.unsqueeze(-1) * block).sum(dim=-2))
        return out


class TemporalMoE(nn.Module):
    """Time embedding -> softmax gate over experts that rescale the streams element-wise.

    The interval bucket of position ``j`` is ``floor(scale * log2(t_j - t_{j-1} + 1))``
    (0 for the oldest item); the absolute code is ``cos(w * a_j * inv_freq)``.
    """

    def __init__(self, streams: int, hidden_size: int, n_experts: int, interval_scale: float,
                 n_buckets: int) -> None:
        super().__init__()
        self.scale, self.n_buckets = interval_scale, n_buckets
        self.gate = nn.Linear(2 * hidden_size, n_experts)
        self.absolute_w = nn.Linear(1, hidden_size)
        self.interval_embedding = nn.Embedding(n_buckets, hidden_size)
        self.experts = nn.Parameter(torch.empty(n_experts, streams * hidden_size))
        self.register_buffer("inv_freq", 1.0 / 10_000 ** (torch.arange(hidden_size) / hidden_size), persistent=False)

    def reset_experts(self) -> None:
        nn.init.normal_(self.experts, std=0.1)

    def buckets(self, times: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        """(B, t) interval bucket of each position; 0 for the oldest item and padding."""
        gap = (times[:, 1:] - times[:, :-1]).clamp(min=0)
        idx = torch.floor(self.scale * torch.log2(gap + 1)).long().clamp(max=self.n_buckets - 1)
        idx = torch.cat([torch.zeros_like(idx[:, :1]), idx], dim=1)
        has_previous = torch.zeros_like(seq, dtype=torch.bool)
        has_previous[:, 1:] = seq[:, :-1] != 0
        return idx * (has_previous & (seq != 0))

    def time_embedding(self, times: torch.Tensor, absolute: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        code = torch.cos(self.absolute_w(absolute.unsqueeze(-1)) * self.inv_freq)
        return torch.cat([self.interval_embedding(self.buckets(times, seq)), code], dim=-1)

    def forward(self, joint: torch.Tensor, time_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        route = self.gate(time_emb).softmax(dim=-1)  # (B, t, E)
        return torch.einsum("bte,ed,btd->btd", route, self.experts, joint), route


@register("hm4sr")
class HM4SR(EvalTableCache, SequentialRecommender):
    """HM4SR with ID, text and image streams.

    Faithful to the paper and its released code (``HM4SR.py``, ``Games.yaml``):
    ID + projected text/image streams with positions; the interactive MoE
    (4 linear experts on the concatenation, per-stream softmax gates, stream
    weights initialised ``[0, 1, 1]``) added as a residual; the temporal MoE
    (4 element-wise experts, normal(0, 0.1) init, gate on
    ``[interval embedding, cos(absolute_w(a) * inv_freq)]``,
    ``interval_scale`` 100) replacing the streams; per-stream LayerNorm,
    dropout and causal post-LN Transformer (2 layers, 2 heads, inner 256,
    dropout 0.5); score ``h_id E^T + sum_m h_m P_m(F_m)^T``; losses CE + CP
    (weight 1) + IDCL (temperature 0.2) + PCL (beta 0.3, temperature 1,
    weight 1). CP: a linear head (PyTorch's default init, as the original
    creates it after the RecBole init) reads the concatenated ID embedding and
    projected text/image features of every real input item (no positions, no
    MoE) and predicts its categories with BCE-with-logits averaged over items
    and categories.

    Deviations (original -> here, why):

    * CP labels: the original's target is a multi-hot vector of every level of
      the item's first category path; here it is one-hot over the most specific
      level of that path (``ModelContext.item_categories``, one label per item,
      named by the whole path so the leaf implies its ancestors; the root,
      shared by every item of an Amazon category dataset, carries no signal).
      Same head input, criterion and weight.
    * Without category labels (bare benchmark folders have no items.parquet;
      imports without metadata name no category) CP is switched off with one
      warning when the model is built, and the model is exactly the CP-free
      one (no head, same initial weights).
    * Time units: intervals in seconds (bucket count from ``max_interval_days``,
      20 years by default); the absolute code reads days since the oldest item
      of the window (the original reads min-max scaled days of the dataset,
      which a model cannot know from a batch). Without timestamps (benchmark
      imports, or an engine that does not pass them) the *positions* are the
      times: every interval is 1, so the interval bucket is constant and the
      temporal gate varies only with the absolute code, which becomes a
      sinusoidal position code.
    * Positions are counted from the oldest real item (RecBole's right padding),
      so the causal encoders make the one-pass form exact.
    * IDCL and PCL in one-pass form use every target position of the batch
      as a sample (in-batch negatives across them, equal targets masked).
    """

    requires = ("features", "categories")

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                 inner_size: int = 256, dropout: float = 0.5, attn_dropout: float = 0.5,
                 modalities: Sequence[str] = ("text", "image"), moe_experts: int = 4,
                 temporal_experts: int = 4, moe_init_weight: Sequence[float] | None = None,
                 interval_scale: float = 100.0, max_interval_days: float = 7305.0,
                 temperature: float = 0.2, beta: float = 0.3, pcl_temperature: float = 1.0,
                 pcl_weight: float = 1.0, idcl_weight: float = 1.0, cp_weight: float = 1.0,
                 layer_norm_eps: float = 1e-12, init_std: float = 0.02) -> None:
        super().__init__(ctx)
        feats = require_features(ctx, "hm4sr", modalities)
        self.modalities = list(modalities)
        streams = 1 + len(self.modalities)
        weights = [0.0] + [1.0] * len(self.modalities) if moe_init_weight is None else list(moe_init_weight)
        if len(weights) != streams:
            raise ValueError(f"hm4sr: moe_init_weight needs {streams} values (ID + modalities), got {weights}")
        for m, array in feats.items():
            self.register_buffer(f"feat_{m}", frozen_table(array), persistent=False)
        self.item_embedding = nn.Embedding(ctx.n_items, hidden_size, padding_idx=0)
        self.projections = nn.ModuleDict({m: nn.Linear(a.shape[1], hidden_size) for m, a in feats.items()})
        self.position_embedding = nn.Embedding(ctx.max_len, hidden_size)
        n_buckets = int(interval_scale * math.log2(max_interval_days * DAY + 1)) + 2
        self.interactive = InteractiveMoE(streams, hidden_size, moe_experts, weights)
        self.temporal = TemporalMoE(streams, hidden_size, temporal_experts, interval_scale, n_buckets)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size, eps=layer_norm_eps) for _ in range(streams))
        self.dropout = nn.Dropout(dropout)
        self.encoders = nn.ModuleList(
            PostLNEncoder(hidden_size, layers, heads, inner_size, dropout, attn_dropout, layer_norm_eps)
            for _ in range(streams))
        self.placeholders = nn.ModuleList(nn.Linear(2 * hidden_size, hidden_size) for _ in self.modalities)
        self.d = hidden_size
        self.temperature, self.beta = temperature, beta
        self.pcl_temperature, self.pcl_weight, self.idcl_weight = pcl_temperature, pcl_weight, idcl_weight
        recbole_init(self, init_std)
        self.temporal.reset_experts()
        self.cp_weight = cp_weight
        self.category_head = self._category_head(ctx, streams * hidden_size) if cp_weight else None

    def _category_head(self, ctx: ModelContext, width: int) -> nn.Linear | None:
        """The CP head and its label buffer, or None (with one warning) when the context has no labels.

        Built after the RecBole init so the other weights match the CP-free model's draw for draw.
        """
        labels = ctx.item_categories
        if labels is None or not (labels >= 0).any():
            log.warning("hm4sr: the context has no item category labels (bare benchmark folder, or no "
                        "category metadata), so the category-prediction loss (cp_weight=%g) is off", self.cp_weight)
            return None
        if labels.shape != (ctx.n_items,):
            raise ValueError(f"hm4sr: item_categories has shape {labels.shape}, expected ({ctx.n_items},)")
        self.register_buffer("item_category", torch.as_tensor(labels, dtype=torch.long), persistent=False)
        return nn.Linear(width, int(labels.max()) + 1)

    # inputs --------------------------------------------------------------------------------------
    def times(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(times for the intervals, absolute code input): seconds and days since the oldest
        item, or positions for both when the batch has no timestamps."""
        seq = batch.seq
        if batch.timestamps is None:
            pos = start_positions(seq, 10**9).float()
            return pos, pos
        real = seq != 0
        t = batch.timestamps.double()
        first = torch.where(real, t, torch.full_like(t, float("inf"))).min(dim=1, keepdim=True).values
        first = torch.where(torch.isinf(first), torch.zeros_like(first), first)
        seconds = ((t - first).clamp(min=0) * real).float()
        return seconds, seconds / DAY

    def streams(self, batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-stream inputs after both MoE levels, and the time embedding (for placeholders)."""
        seq = batch.seq
        pos = self.position_embedding(start_positions(seq, self.max_len))
        xs = [self.item_embedding(seq) + pos]
        xs += [self.projections[m](getattr(self, f"feat_{m}")[seq]) + pos for m in self.modalities]
        xs = [x + r for x, r in zip(xs, self.interactive(xs))]
        times, absolute = self.times(batch)
        time_emb = self.temporal.time_embedding(times, absolute, seq)
        joint, _ = self.temporal(torch.cat(xs, dim=-1), time_emb)
        return list(joint.split(self.d, dim=-1)), time_emb

    def encode(self, s: int, x: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        keep = (seq != 0).unsqueeze(-1).to(x.dtype)
        return self.encoders[s](self.dropout(self.norms[s](x)) * keep, causal_padding_mask(seq), keep)

    def item_tables(self) -> list[torch.Tensor]:
        projected = [self.eval_table(m, lambda m=m: self.projections[m](getattr(self, f"feat_{m}")))
                     for m in self.modalities]
        return [self.item_embedding.weight] + projected

    def scores(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum(h @ table.T for h, table in zip(states, self.item_tables()))

    # losses --------------------------------------------------------------------------------------
    @staticmethod
    def _info_nce(a: torch.Tensor, b: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
        """Row i of ``a`` against all rows of ``b``; other rows with the same target are not negatives."""
        logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
        same = (target[:, None] == target[None, :]) & ~torch.eye(len(target), dtype=torch.bool, device=a.device)
        return F.cross_entropy(logits.masked_fill(same, float("-inf")), torch.arange(len(a), device=a.device))

    def category_loss(self, seq: torch.Tensor) -> torch.Tensor:
        """CP: BCE of the head on every real, labelled input item's ID + projected features."""
        labels = self.item_category[seq]
        known = (seq != 0) & (labels >= 0)
        items, labels = seq[known], labels[known]
        if not len(items):
            return self.category_head.weight.sum() * 0.0
        reps = [self.item_embedding(items)] + [self.projections[m](getattr(self, f"feat_{m}")[items])
                                               for m in self.modalities]
        logits = self.category_head(torch.cat(reps, dim=-1))
        return F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, logits.shape[-1]).to(logits.dtype))

    def placeholder_mask(self, seq: torch.Tensor) -> torch.Tensor:
        """floor(beta * length) random real positions of each row."""
        real = seq != 0
        k = torch.floor(real.sum(1) * self.beta).long()
        noise = torch.rand(seq.shape, device=seq.device).masked_fill(~real, 2.0)
        rank = noise.argsort(dim=1).argsort(dim=1)
        return rank < k[:, None]

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        seq, keep = batch.seq, batch.target != 0
        xs, time_emb = self.streams(batch)
        states = [self.encode(s, x, seq) for s, x in enumerate(xs)]
        target = batch.target[keep]
        picked = [h[keep] for h in states]
        loss = masked_cross_entropy(self.scores(picked), target)
        if self.category_head is not None:
            loss = loss + self.cp_weight * self.category_loss(seq)
        if self.idcl_weight:
            loss = loss + self.idcl_weight * self._info_nce(picked[0], self.item_embedding(target), target,
                                                            self.temperature)
        if self.pcl_weight and self.modalities:
            mask = self.placeholder_mask(seq).unsqueeze(-1)
            pcl = 0.0
            for i in range(len(self.modalities)):
                aug = torch.where(mask, self.placeholders[i](time_emb), xs[i + 1])
                h_aug = self.encode(i + 1, aug, seq)[keep]
                pcl = pcl + self._info_nce(picked[i + 1], h_aug, target, self.pcl_temperature)
            loss = loss + self.pcl_weight * pcl / len(self.modalities)
        return loss

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        xs, _ = self.streams(batch)
        states = [self.encode(s, x, batch.seq)[:, -1] for s, x in enumerate(xs)]
        return self.mask_padding_scores(self.scores(states))
