"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional Transformer over item IDs
trained with the cloze objective, predicting with a mask token appended.

Reference code: the authors' TensorFlow release (FeiSun/BERT4Rec,
``gen_data_fin.py`` for the masking, ``modeling.py`` for the network) and
RecBole's port. The engine hands this model the same batches as SASRec; the
masking happens here, on the fly, so every epoch draws new masks (the original
pre-draws ``dupe_factor = 10`` masked copies of the data instead).
"""

from __future__ import annotations

import torch
from torch import nn

from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.layers import FeedForward, MultiHeadAttention, init_weights, padding_mask, position_ids
from sgp4sr.models.registry import register


class BertLayer(nn.Module):
    """BERT's post-LayerNorm block: ``x = LN(x + Drop(MHA(x))); x = LN(x + FFN(x))``.

    The shared :class:`FeedForward` (GELU) ends in dropout, which is BERT's
    hidden dropout on the FFN output; it also drops after the GELU, which BERT
    does not (the one deviation of this block).
    """

    def __init__(self, hidden_size: int, heads: int, dropout: float, inner_size: int) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(hidden_size, heads, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.ffn = FeedForward(hidden_size, dropout, inner_size=inner_size, activation="gelu")
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(x + self.attn_dropout(self.attn(x, x, x, mask)))
        return self.ffn_norm(x + self.ffn(x))


@register("bert4rec")
class BERT4Rec(SequentialRecommender):
    """Bidirectional self-attention over item IDs with a cloze (masked item) objective.

    Hyper-parameters (config ``models.bert4rec``):
      * ``hidden_size`` (d, default 64; the SGP4SR paper fixes 300 for all baselines)
      * ``layers`` (2), ``heads`` (2), ``dropout`` (0.2: embedding, attention
        weights, attention output and FFN, as RecBole's hidden/attn dropout)
      * ``inner_size`` (FFN width, default ``4 * d`` as in BERT and the original)
      * ``mask_ratio`` (0.2): each real item of a training sequence is replaced
        by the mask token with this probability (Bernoulli per position, as RecBole).
      * ``mask_last_ratio`` (0.5): fraction of training sequences in which
        instead *only the last item* is masked (the task the model is ranked
        on). RecBole 1.2.1 makes half of its BERT4Rec batches such mask-last
        batches (``ft_ratio: 0.5``, drawn per batch; here per sequence); the
        original adds one mask-last copy per sequence to its ``dupe_factor = 10``
        randomly masked copies, i.e. ``1/11`` of its examples. On the demo
        (prefix form, 3 seeds) 0.5 tests at Recall@10 0.231 against 0.218 for
        1/11 (seed 1), RecBole's own BERT4Rec 0.215 (``docs/results.md``,
        session 6). Train it in the prefix form (the configs'
        ``model_training.bert4rec.train_form``): one-pass rows give each
        sequence one mask per epoch, prefix rows one per prefix, as RecBole
        (one-pass: 0.19; with 0.5, 0.14, since a mask-last row then holds
        one target).

    Architecture as the original: item + learned position embeddings, LayerNorm,
    dropout; ``layers`` post-LN Transformer blocks with GELU FFN and a padding
    mask only (bidirectional); at masked positions an output transform
    (linear, GELU, LayerNorm) and logits ``h @ E[:n]^T + b`` tied to the item
    embedding ``E`` with an item bias ``b``; full-softmax cross-entropy over the
    masked positions. The mask token is index ``n_items`` (an extra embedding
    row, never scored). Prediction appends the mask token after the history
    (dropping the oldest item if the row would exceed ``max_len``) and scores
    its output.

    Training sequence from a batch: ``seq`` followed by the row's last target
    (one-pass form: ``target[:, -1]`` is the item after ``seq``'s last; prefix
    form: the only target); the oldest item is dropped only when the row would
    exceed ``max_len``. The engine's one-pass windows over long sequences thus
    act like the original's sliding windows.

    Deviations from the original, stated exactly:
      * masks are Bernoulli per position, redrawn every time a sequence is seen,
        instead of exactly ``round(len * mask_ratio)`` positions (at least one,
        at most ``max_predictions_per_seq = 20``) in 10 pre-drawn copies; a
        sequence whose draw masks nothing contributes no loss that step.
      * a masked position always gets the mask token (the original's
        ``mask_prob = 1.0`` default; BERT's 10% random / 10% keep is not used).
      * sequences longer than ``max_len`` are cut by the engine: in one-pass
        form into its windows (stride ``ceil(max_len / 2)``) instead of the
        original's sliding windows (step ``0.1 * max_len``); in prefix form
        every prefix keeps its most recent ``max_len`` items.
      * positions count from the oldest real item (the original's absolute
        positions with right padding), via the shared ``position_ids``.
      * FFN dropout also after the GELU (shared block, see :class:`BertLayer`).
      * optimiser, lr and batch size come from the engine (Adam, paper's
        setting) instead of the original's Adam with warm-up and linear decay.
    """

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                 dropout: float = 0.2, mask_ratio: float = 0.2, mask_last_ratio: float = 0.5,
                 inner_size: int | None = None) -> None:
        super().__init__(ctx)
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"bert4rec: mask_ratio must be in (0, 1), got {mask_ratio}")
        if not 0.0 <= mask_last_ratio <= 1.0:
            raise ValueError(f"bert4rec: mask_last_ratio must be in [0, 1], got {mask_last_ratio}")
        self.mask_ratio = float(mask_ratio)
        self.mask_last_ratio = float(mask_last_ratio)
        self.mask_token = ctx.n_items
        self.items = nn.Embedding(ctx.n_items + 1, hidden_size, padding_idx=0)
        self.positions = nn.Embedding(ctx.max_len, hidden_size)
        self.input_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.input_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(BertLayer(hidden_size, heads, dropout, inner_size or 4 * hidden_size)
                                    for _ in range(layers))
        self.out_transform = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(),
                                           nn.LayerNorm(hidden_size, eps=1e-12))
        self.out_bias = nn.Parameter(torch.zeros(ctx.n_items))
        init_weights(self)

    # -- encoder -------------------------------------------------------------
    def sequence_output(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, t, d) bidirectional states of a left-padded sequence (mask tokens allowed)."""
        if seq.size(1) > self.max_len:
            raise ValueError(f"bert4rec: sequence length {seq.size(1)} exceeds max_len {self.max_len}")
        x = self.input_norm(self.items(seq) + self.positions(position_ids(seq)))
        x = self.input_dropout(x)
        mask = padding_mask(seq)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every real item (PAD included, masked by the callers): one matmul."""
        h = self.out_transform(hidden)
        return torch.addmm(self.out_bias, h, self.items.weight[: self.n_items].t())

    # -- cloze training --------------------------------------------------------
    def _append(self, seq: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """``seq`` with column ``last`` appended (rows where ``last`` is 0 get a padding column
        in front instead, staying left padded); the first column is dropped only if the
        width would exceed ``max_len``."""
        appended = torch.cat([seq, last], dim=1)
        unchanged = torch.cat([torch.zeros_like(last), seq], dim=1)
        out = torch.where(last != 0, appended, unchanged)
        return out[:, 1:] if out.size(1) > self.max_len else out

    def training_sequence(self, batch: Batch) -> torch.Tensor:
        """``seq`` + the row's last target (the batch may be trimmed below ``max_len``, so the
        oldest item is dropped only when the row would not fit); rows without one keep ``seq``."""
        if batch.target is None:
            raise ValueError("bert4rec: a training batch needs targets")
        return self._append(batch.seq, batch.target[:, -1:])

    def draw_mask(self, seq: torch.Tensor) -> torch.Tensor:
        """Boolean (B, t): which real items to hide (torch's RNG, so the engine's seed fixes it)."""
        real = seq != 0
        masked = (torch.rand(seq.shape, device=seq.device) < self.mask_ratio) & real
        if self.mask_last_ratio > 0:
            last_only = torch.rand(seq.size(0), 1, device=seq.device) < self.mask_last_ratio
            last = torch.zeros_like(masked)
            last[:, -1] = real[:, -1]
            masked = torch.where(last_only, last, masked)
        return masked

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        full = self.training_sequence(batch)
        masked = self.draw_mask(full)
        if not bool(masked.any()):  # nothing drawn in the whole batch: a zero loss that keeps the graph
            return self.out_bias.sum() * 0.0
        inputs = full.masked_fill(masked, self.mask_token)
        hidden = self.sequence_output(inputs)[masked]  # (N, d): only masked positions are scored
        return masked_cross_entropy(self._logits(hidden), full[masked])

    # -- ranking ---------------------------------------------------------------
    def prediction_sequence(self, seq: torch.Tensor) -> torch.Tensor:
        """History with the mask token appended (oldest item dropped if it would not fit)."""
        return self._append(seq, torch.full_like(seq[:, :1], self.mask_token))

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        hidden = self.sequence_output(self.prediction_sequence(batch.seq))[:, -1]
        return self.mask_padding_scores(self._logits(hidden))
