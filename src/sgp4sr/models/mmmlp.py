"""MMMLP (Liang et al., WWW'23): an all-MLP multimodal sequential recommender.

One MLP-Mixer stream per modality (item IDs, image, text): a token mixer
(an MLP across the ``max_len`` sequence positions) and a channel mixer (an MLP
across the hidden units), both pre-LN residual. The fusion layer concatenates
the streams, normalises and maps ``3d -> d``; the last position, normalised,
is scored against the ID embeddings with full-softmax cross-entropy.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.mm_blocks import fit_length, frozen_table, prefix_loss, recbole_init, require_features
from sgp4sr.models.registry import register


class MixerBlock(nn.Module):
    """Token mixing over positions, then channel mixing over units (pre-LN residuals, GELU)."""

    def __init__(self, length: int, hidden_size: int, expansion: float, dropout: float, eps: float) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.token_mlp = _mlp(length, int(length * expansion), dropout)
        self.channel_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.channel_mlp = _mlp(hidden_size, int(hidden_size * expansion), dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``keep`` (B, L, 1) zeroes padding positions after each residual, so that
        padding never feeds real positions through the token mixer."""
        mixed = self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        x = (x + mixed) * keep
        return (x + self.channel_mlp(self.channel_norm(x))) * keep


def _mlp(width: int, inner: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, inner), nn.GELU(), nn.Dropout(dropout), nn.Linear(inner, width),
                         nn.Dropout(dropout))


@register("mmmlp")
class MMMLP(SequentialRecommender):
    """MMMLP on pre-extracted features.

    Faithful to the official code (Applied-Machine-Learning-Lab/MMMLP,
    ``mmmlp.py``): per-modality Mixer streams (input LayerNorm, token mixer
    over the fixed ``max_len`` positions, channel mixer, expansion factor 4,
    GELU), fusion by ``concat -> LayerNorm(3d) -> Linear(3d, d)``, the last
    position through a LayerNorm, scores against the ID embedding table,
    cross-entropy loss, normal(0, 0.02) initialisation.

    Deviations (original -> here, why):

    * Image stream: the original runs a vision MLP-Mixer over raw image patches
      (and a text encoder) into 128-d item vectors; here each modality is the
      frozen pre-extracted feature matrix mapped ``d_m -> d`` by a learned
      linear layer, because the workflow's features are pre-extracted.
    * Layers: the code applies the *same* ID mixer ``n_layers`` times and, by
      an indexing slip, only one effective layer to text and image; here each
      stream has ``layers`` independent blocks (the paper's stacked layers).
    * Padding: RecBole right-pads, so the token mixer sees positions from the
      start and padding vectors leak into real positions; we left-pad to
      ``max_len`` (positions count back from the newest item) and zero padding
      after every residual, which makes outputs independent of extra padding.
    * Training form: the token mixer sees every position, so a one-pass batch
      would leak future items; one-pass batches are expanded to their prefix
      rows (the reference framework's form, same examples), ``prefix_chunk``
      rows at a time under activation checkpointing so memory stays bounded.
    """

    requires = ("features",)

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, dropout: float = 0.5,
                 expansion: float = 4.0, modalities: Sequence[str] = ("image", "text"),
                 layer_norm_eps: float = 1e-12, init_std: float = 0.02, prefix_chunk: int = 512) -> None:
        super().__init__(ctx)
        feats = require_features(ctx, "mmmlp", modalities)
        self.prefix_chunk = prefix_chunk
        self.modalities = list(modalities)
        for m, array in feats.items():
            self.register_buffer(f"feat_{m}", frozen_table(array), persistent=False)
        self.item_embedding = nn.Embedding(ctx.n_items, hidden_size, padding_idx=0)
        self.projections = nn.ModuleDict({m: nn.Linear(a.shape[1], hidden_size) for m, a in feats.items()})
        streams = ["id", *self.modalities]
        self.input_norms = nn.ModuleDict({s: nn.LayerNorm(hidden_size, eps=layer_norm_eps) for s in streams})
        self.mixers = nn.ModuleDict({
            s: nn.ModuleList(MixerBlock(ctx.max_len, hidden_size, expansion, dropout, layer_norm_eps)
                             for _ in range(layers))
            for s in streams
        })
        self.fusion_norm = nn.LayerNorm(hidden_size * len(streams), eps=layer_norm_eps)
        self.fusion = nn.Linear(hidden_size * len(streams), hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        recbole_init(self, init_std)

    def _stream_input(self, stream: str, seq: torch.Tensor) -> torch.Tensor:
        if stream == "id":
            return self.item_embedding(seq)
        return self.projections[stream](getattr(self, f"feat_{stream}")[seq])

    def sequence_state(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, t) items -> (B, d) user state after the newest item."""
        seq = fit_length(seq, self.max_len)
        keep = (seq != 0).unsqueeze(-1).to(self.item_embedding.weight.dtype)
        outputs = []
        for stream, blocks in self.mixers.items():
            x = self.input_norms[stream](self._stream_input(stream, seq)) * keep
            for block in blocks:
                x = block(x, keep)
            outputs.append(x[:, -1])
        fused = self.fusion(self.fusion_norm(torch.cat(outputs, dim=-1)))
        return self.output_norm(fused)

    def _terms(self, rows: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.sequence_state(rows.seq) @ self.item_embedding.weight.T
        target = rows.target[:, -1]
        return masked_cross_entropy(logits, target) * len(target), logits.new_zeros(())

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        return prefix_loss(self._terms, batch, self.prefix_chunk)

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        scores = self.sequence_state(batch.seq) @ self.item_embedding.weight.T
        return self.mask_padding_scores(scores)

