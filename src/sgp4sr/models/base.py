"""The one interface every model implements, so one trainer and one evaluator serve all.

A batch is a left-padded window of each user's item sequence plus per-position
next-item targets (0 = no loss at that position). The *prefix* form of the
reference framework puts a target only at the last position; the *one-pass*
form puts one at every real position. Left padding means the last real
position is always index ``-1``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


@dataclass
class Batch:
    """Model input. ``seq`` (B, t) int64 left-padded items; ``target`` (B, t) int64 or None."""

    seq: torch.Tensor
    target: torch.Tensor | None = None
    user: torch.Tensor | None = None  # (B,) user indices, for models that need them
    timestamps: torch.Tensor | None = None  # (B, t) seconds, aligned with seq (0 on padding)

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda x: None if x is None else x.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.seq), move(self.target), move(self.user), move(self.timestamps))


@dataclass
class ModelContext:
    """What a dataset offers a model beyond the sequences (built by the engine).

    ``features`` maps modality name -> float32 array (n_items, d_m), row 0 zeros.
    ``graphs`` holds scipy CSR matrices: ``cooccurrence`` and ``modal/<modality>``;
    ``centres`` maps modality -> CSR membership (k, n_items).
    ``item_categories`` (n_items,) int64 dense category labels, -1 for padding and
    unknown; None when the split has no category metadata (bare benchmark folders).
    Models declare what they need in ``requires``; the engine checks it and
    raises a clear error naming what is missing.
    """

    n_items: int
    max_len: int
    features: dict[str, np.ndarray] = field(default_factory=dict)
    cooccurrence: sp.csr_matrix | None = None
    modal_graphs: dict[str, sp.csr_matrix] = field(default_factory=dict)
    centres: dict[str, sp.csr_matrix] = field(default_factory=dict)
    item_categories: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SequentialRecommender(nn.Module):
    """Base class: subclasses implement ``forward``-free ``calculate_loss`` and ``full_sort_predict``."""

    #: registry name, set by :func:`sgp4sr.models.registry.register`
    name: ClassVar[str] = ""
    #: what the model reads from the context: any of "features", "cooccurrence", "modal_graphs", "centres",
    #: "categories"
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: ModelContext) -> None:
        super().__init__()
        self.n_items = ctx.n_items
        self.max_len = ctx.max_len
        #: with :meth:`scoring_only`, the one score term :meth:`full_sort_predict` computes (None = all)
        self.score_term: str | None = None

    def score_terms(self) -> tuple[str, ...]:
        """Names of the additive terms of the score, for models whose score is a sum (else empty)."""
        return ()

    @contextmanager
    def scoring_only(self, term: str) -> Iterator[None]:
        """Rank by one term of the score alone (diagnostics: which term carries the ranking)."""
        if term not in self.score_terms():
            raise ValueError(f"{self.name or type(self).__name__}: no score term {term!r}; "
                             f"terms: {list(self.score_terms())}")
        self.score_term = term
        try:
            yield
        finally:
            self.score_term = None

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        """Scalar training loss of a batch (mean over the positions with a target)."""
        raise NotImplementedError

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        """Scores (B, n_items) for the next item after each sequence; column 0 must be ``-inf``."""
        raise NotImplementedError

    @staticmethod
    def mask_padding_scores(scores: torch.Tensor) -> torch.Tensor:
        """PAD is never a valid prediction."""
        scores[..., 0] = float("-inf")
        return scores


def sparse_to_torch(matrix: sp.spmatrix) -> torch.Tensor:
    """scipy sparse -> torch sparse CSR float32 (for ``torch.sparse.mm`` with a learned dense table)."""
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    return torch.sparse_csr_tensor(
        torch.from_numpy(csr.indptr.astype(np.int64)),
        torch.from_numpy(csr.indices.astype(np.int64)),
        torch.from_numpy(csr.data),
        size=csr.shape,
    )


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Full-softmax cross-entropy over the positions whose target is not 0.

    ``logits`` (N, n_items) for the N selected positions, ``target`` (N,).
    PAD is masked out of the softmax, in place: the logits of a matmul are
    not needed by its backward, so this saves a copy of an (N, n_items) tensor.
    """
    logits[:, 0] = float("-inf")
    return nn.functional.cross_entropy(logits, target)
