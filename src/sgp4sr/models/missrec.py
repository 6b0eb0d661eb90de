"""MISSRec (Wang et al., MM'23): multimodal interest tokens and an interest-aware decoder.

Before every training epoch the adapted text and image vectors of all items are
clustered together with k-means; each cluster is an *interest*, each item has
one interest per modality. A user's interest tokens (the distinct interests of
the items in the sequence, embedded by their centroids) go through a
Transformer encoder; the item sequence (text + image + ID + position) goes
through a Transformer decoder that attends to these interests. Items are
scored by a dynamic, softmax-weighted fusion of per-modality cosine logits
plus the ID logits, with a temperature.
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.mm_blocks import (EvalTableCache, frozen_table, prefix_loss, recbole_init, require_features,
                                     start_positions)
from sgp4sr.models.registry import register


def kmeans(points: torch.Tensor, k: int, iters: int, generator: torch.Generator,
           chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means (Euclidean) from ``k`` distinct random points; returns (labels, centroids).

    An emptied cluster keeps its previous centroid. Distances are computed in
    chunks of points so memory stays ``chunk x k``.
    """
    n = points.size(0)
    k = min(k, n)
    start = torch.randperm(n, generator=generator)[:k].to(points.device)
    centroids = points[start].clone()
    labels = torch.empty(n, dtype=torch.long, device=points.device)
    for _ in range(max(iters, 1)):
        sq = (centroids * centroids).sum(1)
        for lo in range(0, n, chunk):
            block = points[lo:lo + chunk]
            labels[lo:lo + chunk] = (sq[None] - 2 * block @ centroids.T).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, points)
        counts = torch.bincount(labels, minlength=k).to(points.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return labels, centroids


@register("missrec")
class MISSRec(EvalTableCache, SequentialRecommender):
    """MISSRec, transductive (ID + text + image): in-domain, or fine-tuned after cross-domain pre-training.

    Faithful to the paper and gimpong/MM23-MISSRec (``missrec.py``,
    ``trainer.py``, ``cluster_utils.py``, ``props``): linear adaptors of the
    text and image features, interest discovery by k-means over the adapted
    vectors of both modalities before every epoch (``interest_ratio`` 0.5 of the
    ``2(n-1)`` item-modality vectors as clusters, 5 iterations, centroids as
    fixed interest embeddings), the sequence's distinct interests as encoder
    tokens without positions, ``torch.nn.Transformer`` (post-LN, GELU, 1 encoder
    + 1 decoder layer for ``layers: 2``, inner size 256, 4 heads, dropout 0.5),
    decoder input ``LN(text + image + position + ID)`` with dropout and no causal
    mask, the last position L2-normalised, ``dynamic_shared`` fusion
    ``sum_m l_m softmax_m(l_m * w)`` of cosine logits, ``(ID + 2 fused) / 3``,
    temperature 0.07, cross-entropy plus ``gamma * |pooled interest states|^2 / d``.

    Cross-domain pre-training (``pretraining.models`` lists ``missrec``; run by
    :mod:`sgp4sr.engine.pretrain`): as the original's ``pretrain`` stage, the
    model is built without ID embeddings over the items of the source datasets
    (their features side by side), interests are re-discovered before every
    epoch over all source items (``interest_ratio`` 0.02 via
    ``pretraining.model_overrides``), and the loss is the in-batch
    sequence-item contrastive loss on the fused cosine logits plus
    ``seq_seq_weight`` (lambda, 1e-3) times the sequence-sequence contrastive
    loss against an item-dropped copy of each sequence, plus ``gamma`` times
    both interest regularisers (:meth:`pretrain_loss`). Fine-tuning loads every
    parameter except those sized by the item set (:attr:`id_sized_state`) and,
    as the original's ``fix_enc``, freezes the position embedding and the
    Transformer (:attr:`finetune_frozen`); adaptors, input LayerNorm, fusion
    factor and the fresh ID embeddings are tuned.

    Deviations (original -> here, why):

    * Pre-training augmentation: the original drops items (probability 0.9) or,
      otherwise, swaps in a second text encoding with dropped words; no second
      text encoding exists here, so every augmented copy is an item drop. The
      original computes the dropped copy's image interests from the undropped
      sequence; here both modalities' interests come from the dropped copy.
      Without pre-training (the default) training is in-domain only.
    * k-means: the original uses torchpq's mini-batch k-means on the GPU; here a
      seeded full-batch Lloyd k-means in torch (same objective, deterministic).
      It runs when the model switches from evaluation to training (the engine
      validates after each epoch, so that is "before every epoch") and before
      the first training step.
    * Positions counted from the oldest real item (RecBole's right padding).
    * The decoder is not causal, so one-pass batches are expanded to their
      prefix rows (the original's training examples), ``prefix_chunk`` rows at a
      time under activation checkpointing so memory stays bounded.
    * More than two modalities: the ID logits weigh ``1`` and the fused logits
      ``M`` (``(ID + 2 fused) / 3`` for two, as in the original).
    """

    requires = ("features",)
    #: state entries sized by the item set: never pre-trained, built fresh for fine-tuning
    id_sized_state: ClassVar[tuple[str, ...]] = ("item_embedding.", "interest_embeddings", "interest_lookup",
                                                  "discoveries")
    #: parameters frozen when fine-tuning pre-trained weights (the original's ``fix_enc``)
    finetune_frozen: ClassVar[tuple[str, ...]] = ("position_embedding.", "transformer.")

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                 inner_size: int = 256, dropout: float = 0.5, attn_dropout: float | None = None,
                 temperature: float = 0.07, gamma: float = 1e-4, interest_ratio: float = 0.5,
                 kmeans_iters: int = 5, modalities: Sequence[str] = ("text", "image"),
                 item_fusion: str = "dynamic_shared", transductive: bool = True, seed: int | None = None,
                 layer_norm_eps: float = 1e-12, init_std: float = 0.02, prefix_chunk: int = 512) -> None:
        super().__init__(ctx)
        self.prefix_chunk = prefix_chunk
        if layers < 2 or layers % 2:
            raise ValueError(f"missrec: layers must be an even number >= 2 (encoder + decoder), got {layers}")
        if item_fusion not in ("dynamic_shared", "static"):
            raise ValueError(f"missrec: item_fusion must be 'dynamic_shared' or 'static', got {item_fusion!r}")
        del attn_dropout  # torch's Transformer uses one dropout rate, as the original does
        feats = require_features(ctx, "missrec", modalities)
        self.modalities = list(modalities)
        for m, array in feats.items():
            self.register_buffer(f"feat_{m}", frozen_table(array), persistent=False)
        self.adaptors = nn.ModuleDict({m: nn.Linear(a.shape[1], hidden_size) for m, a in feats.items()})
        self.item_embedding = nn.Embedding(ctx.n_items, hidden_size, padding_idx=0) if transductive else None
        self.position_embedding = nn.Embedding(ctx.max_len, hidden_size)
        self.input_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.input_dropout = nn.Dropout(dropout)
        self.transformer = nn.Transformer(hidden_size, heads, layers // 2, layers // 2, inner_size, dropout,
                                          activation="gelu", layer_norm_eps=layer_norm_eps, batch_first=True)
        self.fusion_factor = nn.Parameter(torch.zeros(())) if item_fusion == "dynamic_shared" else None
        self.temperature, self.gamma = temperature, gamma
        self.n_interests = max(math.ceil(len(self.modalities) * (ctx.n_items - 1) * interest_ratio), 1)
        self.kmeans_iters = kmeans_iters
        self.seed = int(ctx.extra.get("seed", 0) if seed is None else seed)
        self.register_buffer("interest_embeddings", torch.zeros(self.n_interests + 1, hidden_size))
        self.register_buffer("interest_lookup", torch.zeros(len(self.modalities), ctx.n_items, dtype=torch.long))
        self.register_buffer("discoveries", torch.zeros((), dtype=torch.long))
        self._stale = True
        recbole_init(self, init_std)

    # interest discovery --------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "MISSRec":
        if mode and not self.training:
            self._stale = True  # back from validation: a new epoch starts
        return super().train(mode)

    def start_epoch(self) -> None:
        """Pre-training has no validation between epochs: its loop calls this so interests are re-discovered."""
        self._stale = True

    def adapted(self, modality: str, items: torch.Tensor | None = None) -> torch.Tensor:
        table = getattr(self, f"feat_{modality}")
        return self.adaptors[modality](table if items is None else table[items])

    @torch.no_grad()
    def discover_interests(self) -> None:
        """k-means over the adapted vectors of every (item, modality); write centroids and lookups."""
        points = torch.cat([self.adapted(m)[1:] for m in self.modalities])
        gen = torch.Generator().manual_seed(self.seed * 100_003 + int(self.discoveries))
        labels, centroids = kmeans(points.float(), self.n_interests, self.kmeans_iters, gen)
        self.interest_embeddings.zero_()
        self.interest_embeddings[1:1 + len(centroids)] = centroids.to(self.interest_embeddings.dtype)
        n = self.n_items - 1
        for i in range(len(self.modalities)):
            self.interest_lookup[i, 1:] = labels[i * n:(i + 1) * n] + 1
        self.discoveries += 1
        self._stale = False

    def interest_tokens(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, t) items -> (B, M*t) distinct interest ids of the sequence, 0 = padding."""
        ids = self.interest_lookup[:, seq].permute(1, 0, 2).reshape(seq.size(0), -1)
        ids = ids.sort(dim=1).values
        dup = torch.zeros_like(ids, dtype=torch.bool)
        dup[:, 1:] = ids[:, 1:] == ids[:, :-1]
        return ids.masked_fill(dup, 0)

    # sequence ------------------------------------------------------------------------------------
    def encode(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, t) -> normalised (B, d) state after the newest item, and the interest regulariser."""
        if self._stale and (self.training or int(self.discoveries) == 0):
            self.discover_interests()
        tokens = self.interest_tokens(seq)
        token_pad = tokens == 0
        memory = self.transformer.encoder(self.interest_embeddings[tokens], src_key_padding_mask=token_pad)
        real = (~token_pad).unsqueeze(-1).to(memory.dtype)
        pooled = (memory * real).sum(1) * real.mean(1)
        regulariser = (pooled * pooled).sum() / pooled.size(1)

        x = sum(self.adapted(m, seq) for m in self.modalities)
        x = x + self.position_embedding(start_positions(seq, self.max_len))
        if self.item_embedding is not None:
            x = x + self.item_embedding(seq)
        x = self.input_dropout(self.input_norm(x))
        out = self.transformer.decoder(x, memory, tgt_key_padding_mask=seq == 0,
                                       memory_key_padding_mask=token_pad)
        return F.normalize(out[:, -1], dim=-1), regulariser

    def logits(self, state: torch.Tensor) -> torch.Tensor:
        tables = [self.eval_table(m, lambda m=m: F.normalize(self.adapted(m), dim=-1)) for m in self.modalities]
        ids = None
        if self.item_embedding is not None:
            ids = self.eval_table("id", lambda: F.normalize(self.item_embedding.weight, dim=-1))
        return self.fused_logits(state, tables, ids)

    def fused_logits(self, state: torch.Tensor, tables: list[torch.Tensor],
                     ids: torch.Tensor | None = None) -> torch.Tensor:
        """Fused, temperature-scaled logits of ``state`` against normalised per-modality item ``tables``."""
        per_modality = torch.stack([state @ table.T for table in tables], -1)
        if self.fusion_factor is not None:
            fused = (per_modality * (per_modality * self.fusion_factor).softmax(dim=-1)).sum(-1)
        else:
            fused = per_modality.mean(-1)
        if ids is not None:
            m = len(self.modalities)
            fused = (state @ ids.T + m * fused) / (m + 1)
        return fused / self.temperature

    def _terms(self, rows: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        state, regulariser = self.encode(rows.seq)
        target = rows.target[:, -1]
        return masked_cross_entropy(self.logits(state), target) * len(target), self.gamma * regulariser

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        if self._stale:  # before the chunks, so that every chunk sees this epoch's interests
            self.discover_interests()
        return prefix_loss(self._terms, batch, self.prefix_chunk)

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        state, _ = self.encode(batch.seq)
        return self.mask_padding_scores(self.logits(state))

    def pretrain_loss(self, batch: Batch, augmented: Batch, seq_seq_weight: float) -> torch.Tensor:
        """The original's pre-training loss over prefix rows (target at the last position).

        In-batch sequence-item contrast on the fused logits (the other rows' targets
        are the negatives), sequence-sequence contrast against ``augmented`` (the
        same rows, items dropped), and the interest regulariser of both.
        """
        if self._stale:
            self.discover_interests()
        assert batch.target is not None
        state, regulariser = self.encode(batch.seq)
        aug_state, aug_regulariser = self.encode(augmented.seq)
        positives = batch.target[:, -1]
        tables = [F.normalize(self.adapted(m, positives), dim=-1) for m in self.modalities]
        labels = torch.arange(len(positives), device=positives.device)
        seq_item = F.cross_entropy(self.fused_logits(state, tables), labels)
        seq_seq = F.cross_entropy(state @ aug_state.T / self.temperature, labels)
        return seq_item + seq_seq_weight * seq_seq + self.gamma * (regulariser + aug_regulariser)
