"""SASRecF (RecBole's feature-aware SASRec): SASRec whose input item
representation fuses the ID embedding with projected item features.

Also home of :class:`FeatureProjection`, the frozen-feature lookup + learned
linear map that FDSA shares.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.layers import SASRecEncoder, causal_padding_mask, init_weights, position_ids
from sgp4sr.models.registry import register


def feature_matrix(ctx: ModelContext, model: str, modality: str) -> np.ndarray:
    """The ``(n_items, d_m)`` float32 features of ``modality``, or an error naming what exists."""
    if modality not in ctx.features:
        provided = ", ".join(sorted(ctx.features)) or "none"
        raise ValueError(f"{model} needs '{modality}' features; the dataset provides: {provided}")
    array = np.asarray(ctx.features[modality], dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != ctx.n_items:
        raise ValueError(f"{model}: '{modality}' features have shape {array.shape}, "
                         f"expected ({ctx.n_items}, d) with row 0 for padding")
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"{model}: '{modality}' features are not finite (first bad row: item {bad})")
    return array


class FeatureProjection(nn.Module):
    """Frozen feature table ``F`` (buffer, not saved in ``model.pt``) and a learned ``Linear(d_m, d)``.

    ``forward(seq)`` projects each distinct item of the batch once
    (``torch.unique``), so the cost is ``min(B*t, n_items)`` rows of
    ``d_m x d`` per step however long the padded window, and the wide
    (4096-d) features are gathered once per step. Padding rows are zero.
    """

    def __init__(self, features: np.ndarray, hidden_size: int) -> None:
        super().__init__()
        table = torch.from_numpy(np.array(features, dtype=np.float32, copy=True))
        table[0] = 0.0
        self.register_buffer("table", table, persistent=False)
        self.proj = nn.Linear(table.size(1), hidden_size)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        items, inverse = torch.unique(seq, return_inverse=True)
        projected = self.proj(self.table[items])
        return projected[inverse] * (seq != 0).unsqueeze(-1)


def selected_positions(hidden: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """States and targets of the positions with a target (one-pass: every real position; prefix: the last)."""
    keep = target != 0
    return hidden[keep], target[keep]


@register("sasrecf")
class SASRecF(SequentialRecommender):
    """SASRec over fused item representations ``W [E_i ; P_image F_image[i] ; P_text F_text[i]] + b``.

    Hyper-parameters (config ``models.sasrecf``): ``hidden_size`` (d, default 64;
    the paper fixes 300), ``layers`` (2), ``heads`` (2 as SASRec/RecBole; the
    config sets 4), ``dropout`` (0.5: embedding, attention, FFN).

    * Modalities: every matrix in ``ctx.features``, in sorted name order, each
      mapped to ``d`` by its own linear map (RecBole's feature embedding for a
      dense vector field).
    * Fusion: concatenation of the ID embedding and the projected features,
      then a linear map ``(1 + M) d -> d`` (RecBole's ``concat_layer``), chosen
      over a sum because it is what RecBole's SASRecF does.
    * Input: ``LayerNorm(fused + position)``, dropout, padding zeroed
      (RecBole's input path); then the SASRec encoder of this project
      (pre-LN blocks with ReLU FFN, causal + padding mask, final LayerNorm).
    * Scores: against the ID embeddings ``E`` of all items, one matmul, as
      RecBole (the fused representation enters only the input side; scoring
      against fused items would re-project the whole 4096-d table every step).
    * Loss: full-softmax cross-entropy at every position with a target.

    Deviations from RecBole's SASRecF: the encoder is the pmixer/SASRec block
    (pre-LN, ReLU, eps 1e-8) that this project's SASRec uses, not RecBole's
    post-LN GELU Transformer, so that SASRecF differs from SASRec only in its
    input; positions count from the oldest real item (``position_ids``, so
    one-pass and prefix rows give an item the same position); features are used raw
    (the LayerNorm at the input absorbs their scale).
    """

    requires = ("features",)

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__(ctx)
        if not ctx.features:
            raise ValueError("sasrecf needs item features; the dataset provides none")
        self.modalities = sorted(ctx.features)
        self.items = nn.Embedding(ctx.n_items, hidden_size, padding_idx=0)
        self.features = nn.ModuleDict({m: FeatureProjection(feature_matrix(ctx, "sasrecf", m), hidden_size)
                                       for m in self.modalities})
        self.fuse = nn.Linear(hidden_size * (1 + len(self.modalities)), hidden_size)
        self.positions = nn.Embedding(ctx.max_len, hidden_size)
        self.input_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.input_dropout = nn.Dropout(dropout)
        self.encoder = SASRecEncoder(hidden_size, layers, heads, dropout)
        init_weights(self)

    def sequence_output(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, t, d) causal states; position j depends on items at positions <= j only."""
        if seq.size(1) > self.max_len:
            raise ValueError(f"sasrecf: sequence length {seq.size(1)} exceeds max_len {self.max_len}")
        parts = [self.items(seq)] + [self.features[m](seq) for m in self.modalities]
        fused = self.fuse(torch.cat(parts, dim=-1))
        keep = (seq != 0).unsqueeze(-1)
        x = self.input_dropout(self.input_norm(fused + self.positions(position_ids(seq)))) * keep
        return self.encoder(x, causal_padding_mask(seq), keep)

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        if batch.target is None:
            raise ValueError("sasrecf: a training batch needs targets")
        hidden, target = selected_positions(self.sequence_output(batch.seq), batch.target)
        return masked_cross_entropy(hidden @ self.items.weight.t(), target)

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        hidden = self.sequence_output(batch.seq)[:, -1]
        return self.mask_padding_scores(hidden @ self.items.weight.t())
