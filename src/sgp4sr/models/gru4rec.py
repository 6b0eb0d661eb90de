"""GRU4Rec (Hidasi et al., ICLR 2016) in the form RecBole and most papers compare to:
item embedding + dropout -> GRU -> linear map to the embedding size; item
scores are dot products with the (tied) item embeddings, trained with
full-softmax cross-entropy over all items.

A GRU is not invariant to leading padding (its biases move the hidden state
even on zero inputs), so each left-padded row is packed to its real items
before the GRU and the outputs are put back in place.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.layers import init_weights
from sgp4sr.models.registry import register


def left_to_right(seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Indices that move each row's real (right-aligned) items to the front: gather(1, idx)."""
    t = seq.size(1)
    pos = torch.arange(t, device=seq.device)[None, :]
    return (pos + (t - lengths)[:, None]) % t


@register("gru4rec")
class GRU4Rec(SequentialRecommender):
    """Hyper-parameters (config ``models.gru4rec``): ``hidden_size`` (GRU units),
    ``embedding_size`` (item embedding width, default = hidden_size), ``layers``,
    ``dropout`` (on the input embeddings, as RecBole), ``init_scheme``.

    ``init_scheme`` ``recbole`` (default) is RecBole's ``_init_weights``:
    xavier-normal item embeddings (padding row zero here), xavier-uniform GRU
    weights, the output map at PyTorch's default, and a GRU without biases.
    ``trunc_normal`` is this project's earlier form (embeddings and the output
    map truncated normal with ``init_std``, zero-initialised GRU biases): on
    the demo it converged in about 55 epochs to test R@10 0.30 against
    RecBole's 0.33 in about 31 (benchmarks/bench_parity.py), the smaller
    embedding scale being the difference.
    """

    requires = ()

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 1, dropout: float = 0.3,
                 embedding_size: int | None = None, init_std: float = 0.02, init_scheme: str = "recbole") -> None:
        super().__init__(ctx)
        if init_scheme not in ("recbole", "trunc_normal"):
            raise ValueError(f"gru4rec: init_scheme must be 'recbole' or 'trunc_normal', got {init_scheme!r}")
        emb = embedding_size or hidden_size
        recbole = init_scheme == "recbole"
        self.items = nn.Embedding(ctx.n_items, emb, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(emb, hidden_size, num_layers=layers, batch_first=True, bias=not recbole)
        self.dense = nn.Linear(hidden_size, emb)
        if recbole:
            with torch.no_grad():
                nn.init.xavier_normal_(self.items.weight)
                self.items.weight[0].zero_()
        else:
            init_weights(self, init_std)
        for name, weight in self.gru.named_parameters():  # RecBole: xavier for the recurrent weights
            if "weight" in name:
                nn.init.xavier_uniform_(weight)
            else:
                nn.init.zeros_(weight)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, t, emb) states aligned with the left-padded input; padding positions are zero."""
        lengths = (seq != 0).sum(1)
        idx = left_to_right(seq, lengths)
        x = self.dropout(self.items(seq.gather(1, idx)))  # right padded
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=seq.size(1))
        out = self.dense(out)
        back = (torch.arange(seq.size(1), device=seq.device)[None, :] - (seq.size(1) - lengths)[:, None]) % seq.size(1)
        out = out.gather(1, back.unsqueeze(-1).expand(-1, -1, out.size(-1)))
        return out * (seq != 0).unsqueeze(-1).to(out.dtype)

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        assert batch.target is not None, "training batches carry targets"
        selected = batch.target != 0
        logits = self.encode(batch.seq)[selected] @ self.items.weight.T
        return masked_cross_entropy(logits, batch.target[selected])

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        last = self.encode(batch.seq)[:, -1]
        return self.mask_padding_scores(last @ self.items.weight.T)
