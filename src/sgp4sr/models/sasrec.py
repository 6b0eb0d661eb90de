"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over item IDs.

Built from the shared blocks: item embedding scaled by ``sqrt(d)`` plus learned
positions (counted from the oldest item, ``layers.position_ids``), dropout, ``layers`` SASRec
encoder layers with a causal + padding mask, a final LayerNorm. The score of
item ``i`` is ``h · E_i`` with the input embedding table ``E`` (tied, as in the
original), trained with full-softmax cross-entropy over all items as RecBole's
``loss_type = CE`` does (the original samples one negative for a BCE loss).
"""

from __future__ import annotations

import math

import torch

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.layers import ItemSequenceEmbedding, SASRecEncoder, causal_padding_mask, init_weights
from sgp4sr.models.registry import register


@register("sasrec")
class SASRec(SequentialRecommender):
    """Hyper-parameters (config ``models.sasrec``): ``hidden_size`` (d), ``layers``,
    ``heads``, ``dropout`` (embedding, attention and feed-forward), ``init_std``
    (truncated-normal std of the weights, 0.02 as RecBole)."""

    requires = ()

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                 dropout: float = 0.5, init_std: float = 0.02) -> None:
        super().__init__(ctx)
        self.hidden_size = hidden_size
        self.embed = ItemSequenceEmbedding(ctx.n_items, hidden_size, ctx.max_len, dropout)
        self.encoder = SASRecEncoder(hidden_size, layers, heads, dropout)
        self.scale = math.sqrt(hidden_size)
        init_weights(self, init_std)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, t, d) states; position j depends only on items at positions <= j."""
        if seq.size(1) > self.max_len:
            raise ValueError(f"sasrec: sequence length {seq.size(1)} exceeds max_len {self.max_len}")
        x = self.embed(seq, scale=self.scale)
        keep = (seq != 0).unsqueeze(-1).to(x.dtype)
        return self.encoder(x, causal_padding_mask(seq), keep)

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        assert batch.target is not None, "training batches carry targets"
        selected = batch.target != 0
        states = self.encode(batch.seq)[selected]  # (N, d): only positions with a target are scored
        logits = states @ self.embed.items.weight.T
        return masked_cross_entropy(logits, batch.target[selected])

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        last = self.encode(batch.seq)[:, -1]
        return self.mask_padding_scores(last @ self.embed.items.weight.T)
