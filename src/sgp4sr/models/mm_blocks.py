"""Pieces shared by the multimodal baselines (UniSRec, MMMLP, MissRec, HM4SR, IISAN).

Kept apart from :mod:`sgp4sr.models.layers` because they serve only these
models: the feature lookup with its clear error, the expansion of one-pass
batches into prefix rows for models whose sequence encoder is not causal,
target selection, and the post-LayerNorm Transformer layer of RecBole that
UniSRec and MissRec are built on (SASRec's reference layer is pre-LN).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sgp4sr.models.base import Batch, ModelContext
from sgp4sr.models.layers import MultiHeadAttention


def require_features(ctx: ModelContext, model: str, modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """The feature matrices a model needs, or an error naming the missing ones."""
    missing = [m for m in modalities if m not in ctx.features]
    if missing:
        provided = ", ".join(sorted(ctx.features)) or "none"
        dataset = ctx.extra.get("dataset", "this dataset")
        raise ValueError(
            f"{model} needs the {', '.join(repr(m) for m in missing)} features; {dataset} provides: {provided}"
        )
    out = {}
    for m in modalities:
        array = np.asarray(ctx.features[m], dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != ctx.n_items:
            raise ValueError(f"{model}: features '{m}' have shape {array.shape}, expected ({ctx.n_items}, d)")
        out[m] = array
    return out


def frozen_table(array: np.ndarray) -> torch.Tensor:
    """A feature matrix as a float32 tensor with row 0 (padding) forced to zero."""
    table = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
    table[0] = 0.0
    return table


def fit_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """Left-pad with zeros or keep the last ``length`` columns, for models whose
    weights are tied to a fixed sequence length (token-mixing MLPs)."""
    t = x.size(1)
    if t == length:
        return x
    if t > length:
        return x[:, t - length:]
    pad = x.new_zeros((x.size(0), length - t) + tuple(x.shape[2:]))
    return torch.cat([pad, x], dim=1)


def is_one_pass(batch: Batch) -> bool:
    """True when some row has a target before its last position (one-pass form)."""
    return batch.target is not None and bool((batch.target[:, :-1] != 0).any())


def expand_prefixes(batch: Batch) -> Batch:
    """One-pass batch -> prefix form: one row per target, ending at that target's position.

    A non-causal sequence encoder would see the future in one-pass form; this
    turns each (row, position) with a target into its own left-padded prefix
    with the target at the last position, exactly the prefix form of the
    reference framework. Row ``n`` copies ``seq[b, :j+1]`` right-aligned.
    """
    assert batch.target is not None
    rows, cols = torch.nonzero(batch.target, as_tuple=True)
    t = batch.seq.size(1)
    offsets = torch.arange(t, device=batch.seq.device)[None, :] - (t - 1 - cols)[:, None]
    valid = offsets >= 0
    src = offsets.clamp(min=0)

    def shift(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        return torch.where(valid, x[rows[:, None], src], torch.zeros((), dtype=x.dtype, device=x.device))

    target = torch.zeros_like(batch.seq[rows])
    target[:, -1] = batch.target[rows, cols]
    user = batch.user[rows] if batch.user is not None else None
    return Batch(shift(batch.seq), target, user, shift(batch.timestamps))


def last_target_rows(batch: Batch) -> Batch:
    """Training batch in prefix form whatever form the engine sends: non-causal
    models call this and then read only the last position."""
    return expand_prefixes(batch) if is_one_pass(batch) else batch


def prefix_loss(terms: Callable[[Batch], tuple[torch.Tensor, torch.Tensor]], batch: Batch,
                chunk: int) -> torch.Tensor:
    """Loss of a non-causal model over the prefix rows of ``batch``: mean cross-entropy plus
    the sum of the additive terms.

    ``terms(rows)`` returns (sum of the rows' cross-entropies, additive extra). A one-pass
    batch of 256 users expands to thousands of prefix rows; they are processed ``chunk``
    rows at a time under activation checkpointing (recomputed in the backward pass), so
    memory stays that of ``chunk`` rows, like the reference framework's prefix batches.
    """
    rows = last_target_rows(batch)
    n = rows.seq.size(0)
    if n <= chunk or not torch.is_grad_enabled():
        ce, extra = terms(rows)
        return ce / n + extra

    def run(seq: torch.Tensor, target: torch.Tensor, times: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        return terms(Batch(seq, target, None, times))

    ce_total, extra_total = 0.0, 0.0
    for lo in range(0, n, chunk):
        part = slice(lo, lo + chunk)
        times = rows.timestamps[part] if rows.timestamps is not None else None
        ce, extra = checkpoint(run, rows.seq[part], rows.target[part], times, use_reentrant=False)
        ce_total, extra_total = ce_total + ce, extra_total + extra
    return ce_total / n + extra_total


def select_targets(hidden: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, t, d) states and (B, t) targets -> the (N, d) states and (N,) targets with a loss."""
    keep = target != 0
    return hidden[keep], target[keep]


def position_ffn(hidden_size: int, inner_size: int, dropout: float, activation: str = "gelu") -> nn.Sequential:
    """RecBole's feed-forward: ``d -> inner``, GELU (or ReLU), ``-> d``, then dropout (no inner dropout)."""
    act = {"gelu": nn.GELU, "relu": nn.ReLU}[activation]
    return nn.Sequential(nn.Linear(hidden_size, inner_size), act(), nn.Linear(inner_size, hidden_size),
                         nn.Dropout(dropout))


class PostLNLayer(nn.Module):
    """RecBole's Transformer layer (post-LN): ``x = LN(x + Drop(MHA(x))); x = LN(x + FFN(x))``."""

    def __init__(self, hidden_size: int, heads: int, inner_size: int, dropout: float,
                 attn_dropout: float, eps: float = 1e-12, activation: str = "gelu") -> None:
        super().__init__()
        self.attn = MultiHeadAttention(hidden_size, heads, attn_dropout)
        self.attn_drop = nn.Dropout(dropout)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.ffn = position_ffn(hidden_size, inner_size, dropout, activation)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, key: torch.Tensor | None = None) -> torch.Tensor:
        """``key`` (optional) attends over a different sequence (cross-attention)."""
        kv = x if key is None else key
        x = self.attn_norm(x + self.attn_drop(self.attn(x, kv, kv, mask)))
        return self.ffn_norm(x + self.ffn(x))


class PostLNEncoder(nn.Module):
    """A stack of :class:`PostLNLayer` (RecBole ``TransformerEncoder``)."""

    def __init__(self, hidden_size: int, layers: int, heads: int, inner_size: int, dropout: float,
                 attn_dropout: float, eps: float = 1e-12, activation: str = "gelu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(PostLNLayer(hidden_size, heads, inner_size, dropout, attn_dropout, eps, activation)
                                    for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, keep: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
            if keep is not None:
                x = x * keep
        return x


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def start_positions(seq: torch.Tensor, max_len: int) -> torch.Tensor:
    """Position of each real item counted from the oldest real item (0 on padding).

    This is where RecBole's right-padded positions put each item, and it is
    causal: the position of item ``j`` does not depend on later items, so the
    one-pass form gives each prefix exactly the outputs it has on its own, and
    extra left padding changes nothing.
    """
    real = (seq != 0).long()
    return ((real.cumsum(dim=1) - 1).clamp(min=0) * real).clamp(max=max_len - 1)


def recbole_init(module: nn.Module, std: float = 0.02) -> None:
    """RecBole's init (which the original baselines use): normal(0, std) linear and
    embedding weights, zero biases, unit LayerNorms; the padding row stays zero."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class EvalTableCache:
    """Mixin for models whose item table is expensive (an adaptor or side network over every
    item): while evaluating without gradients the table is computed once and reused by every
    ranking batch. Training, loading weights and moving the model drop the memo."""

    def eval_table(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():  # type: ignore[attr-defined]
            return compute()
        memo = self.__dict__.setdefault("_eval_tables", {})
        key = f"{key}/{torch.is_autocast_enabled()}"
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def clear_eval_tables(self) -> None:
        self.__dict__.pop("_eval_tables", None)

    def train(self, mode: bool = True) -> Any:
        self.clear_eval_tables()
        return super().train(mode)  # type: ignore[misc]

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.clear_eval_tables()
        return super().load_state_dict(*args, **kwargs)  # type: ignore[misc]

    def _apply(self, *args: Any, **kwargs: Any) -> Any:
        self.clear_eval_tables()
        return super()._apply(*args, **kwargs)  # type: ignore[misc]

