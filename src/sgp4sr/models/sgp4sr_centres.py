"""Interest Centre Attention (ICA) of SGP4SR (spec §2), in a form that serves both training forms.

The ``k`` centres of a modality are queries over one layer's sequence input.
For the *prefix* form (one output per row, at the last position) every centre
sees every real position of the row. For the *one-pass* form (an output at
every position ``j``) the example ending at ``j`` must only see positions
``<= j``, so the centre states depend on ``j``: they form a ``(rows, k, d)``
tensor, one set of ``k`` states per output position. Both are the same
computation over a list of output positions ``(b, j)`` with a key mask
``i <= j``; for the prefix form ``j`` is the last column and the mask reduces
to the padding mask, so the two forms agree exactly.

Only positions that need an output are computed (real positions with a
target), never padding. The initial centres are the same for every output
position unless embedding dropout is drawn on them (training, the code's
default): then each output position gets its own dropped-out copy, as the
code tiles the centres per example before its dropout. Shared initial
centres (evaluation) are projected once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sgp4sr.models.layers import SASRecLayer, position_ids

CENTRE_MASKS = ("padding", "causal_bug")


@dataclass(frozen=True)
class CentreOptions:
    """How the centres of one modality are selected and attended (switches of :class:`~sgp4sr.models.sgp4sr.SGP4SR`).

    ``mask``: the :func:`centre_key_mask` mode. ``tau``: selection temperature.
    ``sample``: Gumbel noise on the selection logits (training, or ``eval_gumbel``).
    ``dropout``: the embedding dropout drawn on each output position's initial
    centres before selection and attention (the code's; None = none).
    ``ffn_norm``: ``LN_f`` before the shared feed-forward (False = the code).
    ``chunk_rows``: centre rows per checkpointed chunk (0 = one chunk).
    """

    mask: str = "padding"
    tau: float = 1.0
    sample: bool = False
    dropout: nn.Module | None = None
    ffn_norm: bool = False
    chunk_rows: int = 0


class OutputRows(NamedTuple):
    """Where a batch's user vectors are read: the (trimmed) sequences ``seq`` (B, t) and the output
    positions ``(rows_b[r], rows_j[r])``; ``target`` their next items (None at evaluation);
    ``one_per_row``: exactly the last position of every row."""

    seq: torch.Tensor
    rows_b: torch.Tensor
    rows_j: torch.Tensor
    target: torch.Tensor | None = None
    one_per_row: bool = False


def centre_key_mask(seq: torch.Tensor, rows_b: torch.Tensor, rows_j: torch.Tensor, k: int,
                    mode: str = "padding") -> torch.Tensor:
    """Boolean allow-mask (R, 1, 1|k, t) of the keys each output position's centres may attend.

    ``padding``: real keys at positions ``<= j`` (the fix of defect §6.4).
    ``causal_bug``: additionally centre ``c`` only sees the ``c + 1`` oldest
    items, which is what the released code's ``~tril(k x t)`` mask did on its
    right-padded sequences (kept to reproduce the original numbers).
    """
    t = seq.size(1)
    cols = torch.arange(t, device=seq.device)
    allowed = (seq[rows_b] != 0) & (cols[None, :] <= rows_j[:, None])  # (R, t)
    if mode == "padding":
        allowed = allowed[:, None, None, :]
    elif mode == "causal_bug":
        pos = position_ids(seq)[rows_b]  # (R, t) position from the oldest item
        centre = torch.arange(k, device=seq.device)
        allowed = allowed[:, None, None, :] & (pos[:, None, None, :] <= centre[None, None, :, None])
    else:
        raise ValueError(f"centre_mask must be one of {CENTRE_MASKS}, got {mode!r}")
    # A query with no allowed key would give NaN; such rows are never real outputs.
    return allowed | ~allowed.any(-1, keepdim=True)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., L, d) -> (..., heads, L, d/heads)."""
    return x.unflatten(-1, (heads, -1)).transpose(-3, -2)


def centre_step(layer: SASRecLayer, z: torch.Tensor, x: torch.Tensor, rows_b: torch.Tensor | None,
                allowed: torch.Tensor, ffn_norm: bool = False) -> torch.Tensor:
    """One ICA layer with the weights of the encoder ``layer`` it shares.

    ``z`` (k, d) initial centres (layer 0, the same for every row) or (R, k, d)
    per-row centre states; ``x`` (B, t, d) the layer's sequence input;
    ``rows_b`` (R,) the row of each output position (None: one output per row,
    R = B); ``allowed`` from :func:`centre_key_mask`. As the code:
    ``q = LN_a(z); z = q + MHA(q, x, x); z = z + FFN(z)`` — its feed-forward
    holds the residual and is applied without the ``LN_f`` the sequence layer
    has there. ``ffn_norm`` adds ``z = LN_f(z)`` before the feed-forward
    (this project's earlier form, mirroring the sequence layer).
    """
    attn = layer.attn
    q = layer.attn_norm(z)
    keys = _heads(attn.k_proj(x), attn.heads)  # (B, h, t, dh): project once per row, then gather
    queries = _heads(attn.q_proj(q), attn.heads)
    if queries.dim() == 3:  # shared layer-0 queries: broadcast, not copied
        queries = queries.unsqueeze(0)
    if attn.heads * x.size(1) < x.size(2):
        z = q + _attend_folded(attn, queries, keys, x, rows_b, allowed, layer.training)
    else:
        values = _heads(attn.v_proj(x), attn.heads)
        if rows_b is not None:
            keys, values = keys[rows_b], values[rows_b]
        queries = queries.expand(keys.size(0), -1, -1, -1)
        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=allowed,
                                             dropout_p=attn.dropout if layer.training else 0.0)
        z = q + attn.out_proj(out.transpose(-3, -2).flatten(-2))  # (R, k, d)
    if ffn_norm:
        z = layer.ffn_norm(z)
    return z + layer.ffn(z)


def _attend_folded(attn, queries: torch.Tensor, keys: torch.Tensor, x: torch.Tensor,
                   rows_b: torch.Tensor | None, allowed: torch.Tensor, training: bool) -> torch.Tensor:
    """``out_proj(MHA(q, x, x))`` with the output map folded into the values, (R, k, d).

    Attention weights are linear in the values, so ``W_o`` can be applied to
    each key's per-head value once (``U_h = V_h W_o^h``, t rows) instead of to
    every centre state (k rows per output position). With ``heads x t < d``
    (short sequences, which length-bucketed batches mostly are) this replaces
    the ``(R k) x d x d`` output map by a ``(R k) x (h t) x d`` product.
    """
    heads = attn.heads
    values = _heads(attn.v_proj(x), heads)  # (B, h, t, dh)
    w = attn.out_proj.weight  # (d, d): out = concat_h(o_h) @ w.T
    folded = torch.einsum("bhtj,dhj->bhtd", values, w.view(w.size(0), heads, -1))  # (B, h, t, d)
    if rows_b is not None:
        keys, folded = keys[rows_b], folded[rows_b]
    scores = queries @ keys.transpose(-1, -2) * keys.size(-1) ** -0.5  # (R, h, k, t)
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    probs = F.dropout(probs, attn.dropout, training)
    r, h, k, t = probs.shape
    out = probs.transpose(1, 2).reshape(r, k, h * t) @ folded.reshape(r, h * t, -1)
    return out + attn.out_proj.bias


def gumbel_noise(rows: int, k: int, like: torch.Tensor) -> torch.Tensor:
    """(rows, k) standard Gumbel draws, ``-log(Exp(1))`` as ``F.gumbel_softmax`` draws them.

    Drawn once for all output positions, before any chunking, so chunked and
    unchunked centre attention see the same noise.
    """
    return -torch.empty(rows, k, device=like.device, dtype=like.dtype).exponential_().log()


def centre_weights(logits: torch.Tensor, tau: float, noise: torch.Tensor | None) -> torch.Tensor:
    """Soft centre selection ``softmax((logits + noise) / tau)``: with Gumbel ``noise`` this is
    ``F.gumbel_softmax(logits, tau, hard=False)`` (training); None is the plain softmax of evaluation (§6.5)."""
    return torch.softmax((logits if noise is None else logits + noise) / tau, dim=-1)


def initial_centres(z0: torch.Tensor, rows: int, dropout: nn.Module | None) -> torch.Tensor:
    """Layer-0 centre states: ``z0`` (k, d) shared by every output position while no dropout is drawn,
    else each of the ``rows`` output positions' own dropped-out copy (rows, k, d), as the code
    tiles the centres per example before its embedding dropout."""
    if dropout is None or not dropout.training or dropout.p == 0:
        return z0
    return dropout(z0.expand(rows, -1, -1))


def centre_mix(blocks: Sequence[SASRecLayer], z0: torch.Tensor, first: torch.Tensor,
               layer_inputs: Sequence[torch.Tensor], at: OutputRows, opts: CentreOptions) -> torch.Tensor:
    """``p @ Z_u`` (R, d): the user's centre states after every layer, mixed with the selection weights ``p``.

    ``z0`` (k, d) initial centres (already scaled), ``first`` (R, d) the
    layer-0 modality input at each output position, ``layer_inputs[l]``
    (B, t, d) the modality branch's input to layer ``l``. ``p`` is the
    selection over the logits ``first . z`` with ``z`` the output position's
    initial centres (after their dropout, see :func:`initial_centres`).
    Output positions are processed in chunks of at most ``opts.chunk_rows``
    centre rows (``0``: one chunk); with more than one chunk and gradients on,
    each chunk is checkpointed (its dropout replayed), so only its small
    output (chunk, d) is kept for the backward pass.
    """
    seq, rows_b, rows_j, one_per_row = at.seq, at.rows_b, at.rows_j, at.one_per_row
    k, total = z0.size(0), rows_b.numel()
    noise = gumbel_noise(total, k, first) if opts.sample else None
    per_chunk = max(1, opts.chunk_rows // k) if opts.chunk_rows else total
    if per_chunk >= total:
        return _mix_chunk(blocks, seq, rows_b, rows_j, None if one_per_row else rows_b, opts, z0, first, noise,
                          *layer_inputs)
    outs = []
    for start in range(0, total, per_chunk):
        part = slice(start, start + per_chunk)
        rb, rj = rows_b[part], rows_j[part]
        args = (blocks, seq, rb, rj, rb, opts, z0, first[part], None if noise is None else noise[part], *layer_inputs)
        if torch.is_grad_enabled():
            outs.append(checkpoint(_mix_chunk, *args, use_reentrant=False))
        else:
            outs.append(_mix_chunk(*args))
    return torch.cat(outs)


def _mix_chunk(blocks: Sequence[SASRecLayer], seq: torch.Tensor, rows_b: torch.Tensor, rows_j: torch.Tensor,
               gather: torch.Tensor | None, opts: CentreOptions, z0: torch.Tensor, first: torch.Tensor,
               noise: torch.Tensor | None, *layer_inputs: torch.Tensor) -> torch.Tensor:
    z = initial_centres(z0, rows_b.numel(), opts.dropout)  # (k, d) or (R, k, d)
    logits = first @ z.T if z.dim() == 2 else torch.einsum("rd,rkd->rk", first, z)  # (R, k)
    p = centre_weights(logits, opts.tau, noise)
    allowed = centre_key_mask(seq, rows_b, rows_j, z0.size(0), opts.mask)
    for block, x in zip(blocks, layer_inputs):
        z = centre_step(block, z, x, gather, allowed, opts.ffn_norm)
    return torch.einsum("rk,rkd->rd", p, z.expand(p.size(0), -1, -1))
