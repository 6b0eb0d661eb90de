"""UniSRec (Hou et al., KDD'22): universal item representations from text.

Each item's text feature goes through a *parametric whitening* layer
``(x - b) W`` (a learned bias and linear map) in each of several experts; a
softmax gate over the experts mixes them (MoE adaptor). In the transductive
setting the ID embedding is added. A SASRec-style Transformer (RecBole's
post-LN layers) encodes the sequence; sequence and item vectors are
L2-normalised and compared with a temperature in full-softmax cross-entropy.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.layers import causal_padding_mask
from sgp4sr.models.mm_blocks import (EvalTableCache, PostLNEncoder, frozen_table, recbole_init, require_features,
                                     select_targets, start_positions)
from sgp4sr.models.registry import register


class ParametricWhitening(nn.Module):
    """``lin(dropout(x) - bias)``: a learned centring followed by a learned projection.

    ``bias`` starts at zero (the original) or, with ``init_mean``, at the mean
    of the features, so the whitened inputs start centred.
    """

    def __init__(self, input_size: int, output_size: int, dropout: float,
                 init_mean: torch.Tensor | None = None) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(input_size) if init_mean is None else init_mean.clone())
        self.lin = nn.Linear(input_size, output_size, bias=False)
        nn.init.normal_(self.lin.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.dropout(x) - self.bias)


class MoEAdaptor(nn.Module):
    """Softmax-gated mixture of whitening experts; noisy gating while training.

    The gate logits are ``x @ w_gate``; in training a Gaussian noise with a
    learned, input-dependent scale ``softplus(x @ w_noise) + 0.01`` is added
    (the original's noisy gating, all experts kept).
    """

    def __init__(self, n_experts: int, input_size: int, output_size: int, dropout: float, noisy: bool = True,
                 init_mean: torch.Tensor | None = None) -> None:
        super().__init__()
        self.experts = nn.ModuleList(ParametricWhitening(input_size, output_size, dropout, init_mean)
                                     for _ in range(n_experts))
        self.w_gate = nn.Parameter(torch.zeros(input_size, n_experts))
        self.w_noise = nn.Parameter(torch.zeros(input_size, n_experts))
        self.noisy = noisy

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        logits = x @ self.w_gate
        if self.noisy and self.training:
            scale = F.softplus(x @ self.w_noise) + 1e-2
            logits = logits + torch.randn_like(logits) * scale
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        experts = torch.stack([e(x) for e in self.experts], dim=-2)  # (..., E, d)
        return (self.gates(x).unsqueeze(-1) * experts).sum(dim=-2)


@register("unisrec")
class UniSRec(EvalTableCache, SequentialRecommender):
    """UniSRec: in-domain, or fine-tuned after multi-domain pre-training.

    Faithful to the paper and RUCAIBox/UniSRec (``unisrec.py``, ``props``):
    whitening experts ``lin(dropout(x) - b)`` (dropout 0.2, 8 experts, gate and
    noise weights zero-initialised, noisy softmax gating in training), the
    transductive item vector ``MoE(text) + ID`` (``transductive: false`` gives
    the inductive text-only setting), input ``LN(item + position)`` and dropout,
    RecBole's post-LN Transformer (GELU, inner size 256, 2 heads, dropout 0.5,
    causal), L2-normalised sequence and item vectors, temperature 0.07,
    full-softmax cross-entropy.

    Multi-domain pre-training (``pretraining.models`` lists ``unisrec``; run by
    :mod:`sgp4sr.engine.pretrain`): as the original's ``pretrain`` stage, the
    model is built text-only (no ID embeddings) over the items of the source
    datasets, batches mix the domains' training prefixes, and the loss
    (:meth:`pretrain_loss`) is the sequence-item contrastive loss against the
    batch's next items plus ``seq_seq_weight`` (lambda, 1e-3) times the
    sequence-sequence contrastive loss against an item-dropped copy of each
    sequence (drop ratio 0.2), both with temperature 0.07 and, as the
    original, the logits of other rows with the same next item set to 0.
    Fine-tuning loads everything but the ID embeddings (:attr:`id_sized_state`)
    and, as the original's default ``fix_enc``, freezes the position embedding
    and the Transformer (:attr:`finetune_frozen`), so the MoE adaptor, the
    input LayerNorm and (transductive) the fresh ID embeddings are tuned.

    Deviations (original -> here, why):

    * Pre-training augmentation: the original drops items (probability 0.9) or
      swaps in a second BERT encoding with dropped words; no second text
      encoding exists here, so every augmented copy is an item drop. Without
      pre-training (the default) the model trains on the target dataset only.
    * Text features: the original uses BERT's 768-d [CLS] vector of title,
      categories and brand; here any configured modality (default ``text``,
      e.g. MiniLM 384-d) is the whitening input.
    * Positions: counted from the oldest real item of the left-padded window,
      i.e. RecBole's right-padded positions; causal, so the one-pass form is
      exact.
    * ``whitening_init: mean`` (not the default) starts the whitening bias at the
      feature mean; the original starts it at zero.
    """

    requires = ("features",)
    #: state entries sized by the item set: never pre-trained, built fresh for fine-tuning
    id_sized_state: ClassVar[tuple[str, ...]] = ("item_embedding.",)
    #: parameters frozen when fine-tuning pre-trained weights (the original's ``fix_enc``)
    finetune_frozen: ClassVar[tuple[str, ...]] = ("position_embedding.", "encoder.")

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                 inner_size: int = 256, dropout: float = 0.5, attn_dropout: float = 0.5,
                 n_experts: int = 8, adaptor_dropout: float = 0.2, temperature: float = 0.07,
                 feature: str = "text", transductive: bool = True, noisy_gating: bool = True,
                 whitening_init: str = "zeros", layer_norm_eps: float = 1e-12, init_std: float = 0.02) -> None:
        super().__init__(ctx)
        table = frozen_table(require_features(ctx, "unisrec", [feature])[feature])
        self.register_buffer("text", table, persistent=False)
        if whitening_init not in ("zeros", "mean"):
            raise ValueError(f"unisrec: whitening_init must be 'zeros' or 'mean', got {whitening_init!r}")
        init_mean = table[1:].mean(dim=0) if whitening_init == "mean" else None
        self.temperature = temperature
        self.item_embedding = nn.Embedding(ctx.n_items, hidden_size, padding_idx=0) if transductive else None
        self.position_embedding = nn.Embedding(ctx.max_len, hidden_size)
        self.input_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.input_dropout = nn.Dropout(dropout)
        self.encoder = PostLNEncoder(hidden_size, layers, heads, inner_size, dropout, attn_dropout, layer_norm_eps)
        recbole_init(self, init_std)  # RecBole's SASRec init, before the adaptor (which has its own)
        self.adaptor = MoEAdaptor(n_experts, table.shape[1], hidden_size, adaptor_dropout, noisy_gating, init_mean)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Adapted text (+ ID) vectors of ``items`` (all items when None)."""
        text = self.text if items is None else self.text[items]
        vec = self.adaptor(text)
        if self.item_embedding is not None:
            vec = vec + (self.item_embedding.weight if items is None else self.item_embedding(items))
        return vec

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, t) -> (B, t, d) causal states (the state at ``j`` sees items ``<= j``)."""
        x = self.item_vectors(seq) + self.position_embedding(start_positions(seq, self.max_len))
        keep = (seq != 0).unsqueeze(-1).to(x.dtype)
        x = self.input_dropout(self.input_norm(x)) * keep
        return self.encoder(x, causal_padding_mask(seq), keep)

    def _logits(self, states: torch.Tensor) -> torch.Tensor:
        items = self.eval_table("items", lambda: F.normalize(self.item_vectors(), dim=-1))
        return F.normalize(states, dim=-1) @ items.T / self.temperature

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        states, target = select_targets(self.encode(batch.seq), batch.target)
        return masked_cross_entropy(self._logits(states), target)

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        return self.mask_padding_scores(self._logits(self.encode(batch.seq)[:, -1]))

    def start_epoch(self) -> None:
        """Nothing to refresh between pre-training epochs (MISSRec re-clusters its interests here)."""

    def pretrain_loss(self, batch: Batch, augmented: Batch, seq_seq_weight: float) -> torch.Tensor:
        """The original's pre-training loss over prefix rows (target at the last position).

        Other rows whose next item equals this row's are not negatives: their
        logits are set to 0 (not removed), exactly as the original does.
        """
        assert batch.target is not None
        state = F.normalize(self.encode(batch.seq)[:, -1], dim=-1)
        aug_state = F.normalize(self.encode(augmented.seq)[:, -1], dim=-1)
        positives = batch.target[:, -1]
        items = F.normalize(self.adaptor(self.text[positives]), dim=-1)
        same = positives[:, None] == positives[None, :]
        same.fill_diagonal_(False)
        labels = torch.arange(len(positives), device=positives.device)

        def contrast(other: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy((state @ other.T / self.temperature).masked_fill(same, 0.0), labels)

        return contrast(items) + seq_seq_weight * contrast(aug_state)
