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
target), never padding, and the layer-0 queries (the same for every row) are
projected once.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from sgp4sr.models.layers import SASRecLayer, position_ids

CENTRE_MASKS = ("padding", "causal_bug")


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
                allowed: torch.Tensor) -> torch.Tensor:
    """One ICA layer with the weights of the encoder ``layer`` it shares.

    ``z`` (k, d) initial centres (layer 0, the same for every row) or (R, k, d)
    per-row centre states; ``x`` (B, t, d) the layer's sequence input;
    ``rows_b`` (R,) the row of each output position (None: one output per row,
    R = B); ``allowed`` from :func:`centre_key_mask`. Mirrors the encoder layer
    so the centres live in the same space: ``q = LN_a(z); z = q + MHA(q, x, x);
    z = LN_f(z); z = z + FFN(z)``.
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


def centre_weights(logits: torch.Tensor, tau: float, sample: bool) -> torch.Tensor:
    """Soft centre selection: Gumbel-softmax while training, plain softmax (no noise) at evaluation (§6.5)."""
    if sample:
        return F.gumbel_softmax(logits, tau=tau, hard=False, dim=-1)
    return torch.softmax(logits / tau, dim=-1)


def centre_mix(blocks: Sequence[SASRecLayer], z0: torch.Tensor, p: torch.Tensor, layer_inputs: Sequence[torch.Tensor],
               seq: torch.Tensor, rows_b: torch.Tensor, rows_j: torch.Tensor, one_per_row: bool, mode: str,
               chunk_rows: int) -> torch.Tensor:
    """``p @ Z_u`` (R, d): the user's centre states after every layer, mixed with the selection weights ``p``.

    ``z0`` (k, d) initial centres, ``layer_inputs[l]`` (B, t, d) the modality
    branch's input to layer ``l``. Output positions are processed in chunks of
    at most ``chunk_rows`` centre rows (``0``: one chunk); with more than one
    chunk and gradients on, each chunk is checkpointed, so only its small
    output (chunk, d) is kept for the backward pass.
    """
    k, total = z0.size(0), rows_b.numel()
    per_chunk = max(1, chunk_rows // k) if chunk_rows else total
    if per_chunk >= total:
        return _mix_chunk(blocks, seq, rows_b, rows_j, None if one_per_row else rows_b, mode, z0, p, *layer_inputs)
    outs = []
    for start in range(0, total, per_chunk):
        rb, rj = rows_b[start:start + per_chunk], rows_j[start:start + per_chunk]
        args = (blocks, seq, rb, rj, rb, mode, z0, p[start:start + per_chunk], *layer_inputs)
        if torch.is_grad_enabled():
            outs.append(checkpoint(_mix_chunk, *args, use_reentrant=False))
        else:
            outs.append(_mix_chunk(*args))
    return torch.cat(outs)


def _mix_chunk(blocks: Sequence[SASRecLayer], seq: torch.Tensor, rows_b: torch.Tensor, rows_j: torch.Tensor,
               gather: torch.Tensor | None, mode: str, z0: torch.Tensor, p: torch.Tensor,
               *layer_inputs: torch.Tensor) -> torch.Tensor:
    allowed = centre_key_mask(seq, rows_b, rows_j, z0.size(0), mode)
    z = z0
    for block, x in zip(blocks, layer_inputs):
        z = centre_step(block, z, x, gather, allowed)
    return torch.einsum("rk,rkd->rd", p, z.expand(p.size(0), -1, -1))
