"""Blocks shared by the attention models: multi-head attention on torch's fused
kernel, the position-wise feed-forward, the SASRec encoder layer and masks.

The encoder layer follows the SASRec reference (pmixer/SASRec.pytorch) and the
SGP4SR spec §2: ``q = LN_a(x); x = q + MHA(q, x, x); x = LN_f(x); x = x + FFN(x)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention over ``scaled_dot_product_attention``.

    ``mask`` is boolean, True where attention is *allowed*, broadcastable to
    (B, heads, Lq, Lk). Query rows with nothing allowed return zeros instead of
    NaN (this happens for padding queries, whose outputs are discarded).
    """

    def __init__(self, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by heads {heads}")
        self.heads = heads
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        return x.view(b, length, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._split(self.q_proj(query)), self._split(self.k_proj(key)), self._split(self.v_proj(value))
        if mask is not None:
            mask = mask.unsqueeze(1) if mask.dim() == 3 else mask
            empty = ~mask.any(dim=-1, keepdim=True)  # (B, 1|h, Lq, 1)
            if bool(empty.any()):
                mask = mask | empty  # attend somewhere, then zero those rows below
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        if mask is not None and bool(empty.any()):
            out = out.masked_fill(empty, 0.0)
        b, h, length, dh = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, length, h * dh))


class FeedForward(nn.Module):
    """Two position-wise ``d -> d`` maps with ReLU and dropout (SASRec's point-wise FFN)."""

    def __init__(self, hidden_size: int, dropout: float, inner_size: int | None = None,
                 activation: str = "relu") -> None:
        super().__init__()
        inner = inner_size or hidden_size
        self.net = nn.Sequential(
            nn.Linear(hidden_size, inner),
            nn.GELU() if activation == "gelu" else nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(inner, hidden_size),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SASRecLayer(nn.Module):
    """``q = LN_a(x); x = q + MHA(q, x, x); x = LN_f(x); x = x + FFN(x)``."""

    def __init__(self, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden_size, eps=1e-8)
        self.attn = MultiHeadAttention(hidden_size, heads, dropout)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=1e-8)
        self.ffn = FeedForward(hidden_size, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``keep`` (B, t, 1) zeroes padding positions after the layer, as the reference does."""
        q = self.attn_norm(x)
        x = q + self.attn(q, x, x, mask)
        x = self.ffn_norm(x)
        x = x + self.ffn(x)
        return x * keep if keep is not None else x


class SASRecEncoder(nn.Module):
    """A stack of :class:`SASRecLayer` followed by the final LayerNorm."""

    def __init__(self, hidden_size: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SASRecLayer(hidden_size, heads, dropout) for _ in range(layers))
        self.last_norm = nn.LayerNorm(hidden_size, eps=1e-8)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, keep: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask, keep)
        return self.last_norm(x)


def causal_padding_mask(seq: torch.Tensor) -> torch.Tensor:
    """(B, 1, t, t) True where query i may attend key j: j <= i and key j is a real item."""
    t = seq.size(1)
    causal = torch.ones(t, t, dtype=torch.bool, device=seq.device).tril()
    return (causal.unsqueeze(0) & (seq != 0).unsqueeze(1)).unsqueeze(1)


def position_ids(seq: torch.Tensor) -> torch.Tensor:
    """(B, t) position of each item counted from the oldest real item (padding gets 0).

    Counting from the oldest item keeps every position unchanged under extra
    left padding *and* across prefixes: the item at index ``i`` has the same
    position in the one-pass row as in each prefix row that contains it, so
    the one-pass form's output at ``j`` equals the prefix form's (spec §8).
    Counting back from the newest item would shift all positions by ``t-1-j``.
    """
    return ((seq != 0).long().cumsum(1) - 1).clamp_(min=0)


def padding_mask(seq: torch.Tensor, queries: int | None = None) -> torch.Tensor:
    """(B, 1, Lq, t) True where the key is a real item (bidirectional attention)."""
    lq = queries or seq.size(1)
    return (seq != 0).unsqueeze(1).unsqueeze(1).expand(-1, 1, lq, -1)


class ItemSequenceEmbedding(nn.Module):
    """Item (ID) embedding + learned absolute positions + dropout, padding row zero.

    ``scale`` multiplies the item embedding before positions are added (SASRec
    uses ``sqrt(d)``; SGP4SR's ID branch uses ``d**0.9``).
    """

    def __init__(self, n_items: int, hidden_size: int, max_len: int, dropout: float,
                 extra_tokens: int = 0) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + extra_tokens, hidden_size, padding_idx=0)
        self.positions = nn.Embedding(max_len, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def add_positions(self, x: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        """Positions from :func:`position_ids` (counted from the oldest real item)."""
        x = x + self.positions(position_ids(seq))
        return self.dropout(x) * (seq != 0).unsqueeze(-1)

    def forward(self, seq: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.add_positions(self.items(seq) * scale, seq)


INIT_SCHEMES = ("trunc_normal", "sgp4sr_code")


def init_weights(module: nn.Module, std: float = 0.02, scheme: str = "trunc_normal") -> None:
    """Initialise every ``nn.Linear``, ``nn.Embedding`` and ``nn.LayerNorm`` inside ``module``.

    ``trunc_normal`` (the default, every model but SGP4SR): linear and
    embedding weights from ``normal(0, std)`` truncated at ``±2 std``. This
    is the project's own choice (RecBole's ``_init_weights`` draws plain
    ``normal_``), kept so the baselines' initialisation does not change.

    ``sgp4sr_code``: what the SGP4SR release's ``_init_weights`` leaves on its
    modules. Linear and embedding weights from plain ``normal(0, std)`` (the
    attention's output map included); the modules it does not visit keep
    PyTorch's initialisation: the query/key/value maps are drawn as
    ``nn.MultiheadAttention``'s packed ``in_proj_weight`` (see
    :func:`_xavier_in_proj`) and the feed-forward's two maps as the release's
    ``Conv1d(d, d, kernel_size=1)`` pair, whose default initialisation is
    ``nn.Linear``'s (kaiming-uniform weights, uniform biases in ``±1/sqrt(d)``).

    Both: other biases zero, embedding padding rows zero (the release also
    draws its padding row; in SGP4SR that row never reaches an output, since
    no graph or centre has a padding column and its score is masked),
    LayerNorm weight 1 and bias 0.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            if scheme == "trunc_normal":
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            else:
                nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if scheme == "sgp4sr_code":
        for m in module.modules():
            if isinstance(m, MultiHeadAttention):
                _xavier_in_proj(m)
            elif isinstance(m, FeedForward):
                for lin in m.net:
                    if isinstance(lin, nn.Linear):
                        lin.reset_parameters()


@torch.no_grad()
def _xavier_in_proj(attn: MultiHeadAttention) -> None:
    """Query/key/value weights as one xavier-uniform draw of the stacked ``3d x d`` matrix, split in three,
    and zero biases: ``nn.MultiheadAttention``'s initialisation of its packed ``in_proj``."""
    projections = (attn.q_proj, attn.k_proj, attn.v_proj)
    packed = nn.init.xavier_uniform_(torch.cat([proj.weight for proj in projections]))
    for proj, weight in zip(projections, packed.chunk(3)):
        proj.weight.copy_(weight)
        proj.bias.zero_()
