"""Turning users' item sequences into left-padded training examples and batches.

Two training forms (``train_form``):

* ``prefix`` — exactly the reference framework: every prefix of a user's
  training sequence (length >= 1, truncated to its most recent ``max_len``
  items) is one row whose only target is the next item, at the last position.
* ``onepass`` — each user's training sequence is one row with a target at
  every position (the item that follows it). For a causal model the output at
  position ``j`` depends only on items ``<= j``, so this row holds the same
  (context, target) examples as the prefix rows at a fraction of the cost
  (spec §8); the dropout draws differ because one forward pass serves all of
  them. A sequence with more than ``max_len + 1`` items is cut into windows:
  the first window holds the first ``max_len`` items and predicts targets
  ``1..max_len`` (each with its full, untruncated context); each further
  window holds the ``max_len`` items before its last target and predicts only
  its last ``stride`` targets (``stride = ceil(max_len / 2)``), which no other
  window predicts. So every target is predicted exactly once, with at least
  ``max_len - stride + 1`` and at most ``max_len`` items of context (the
  prefix form would give exactly ``min(j, max_len)``).

``training.batch_size`` counts targets, not rows, in both forms: a one-pass
batch packs whole rows until it holds about ``batch_size`` targets
(:func:`batch_order`), so both forms take the same number of optimiser steps
per epoch and a batch size means what it means in the reference framework.

Rows are left padded (index 0) so the newest item is always in the last
column, and a batch is trimmed to its longest row: the attention models count
positions from the oldest real item (``models.layers.position_ids``) and mask
padding, so the trimmed padding never changes an output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from sgp4sr.models.base import Batch


@dataclass
class Examples:
    """Left-padded rows: ``seq`` and ``target`` (N, max_len) int32, ``user`` (N,), ``length`` (N,) real items."""

    seq: np.ndarray
    target: np.ndarray
    user: np.ndarray
    length: np.ndarray
    times: np.ndarray | None = None  # (N, max_len) int64 interaction times aligned with ``seq``, 0 on padding

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    @property
    def n_targets(self) -> int:
        """Number of (context, target) examples — the same in both forms, so examples/s compare."""
        return int(np.count_nonzero(self.target))


def left_pad(seqs: Sequence[np.ndarray], max_len: int, dtype: type = np.int32) -> tuple[np.ndarray, np.ndarray]:
    """The most recent ``max_len`` items of each sequence, left padded: (N, max_len) and lengths."""
    out = np.zeros((len(seqs), max_len), dtype=dtype)
    lengths = np.zeros(len(seqs), dtype=np.int64)
    for row, s in enumerate(seqs):
        s = np.asarray(s)[-max_len:] if len(s) else np.zeros(0, dtype=np.int64)
        if len(s):
            out[row, max_len - len(s):] = s
        lengths[row] = len(s)
    return out, lengths


def _check_items(seq: np.ndarray, user: int, n_items: int | None) -> None:
    if len(seq) and (seq.min() < 1 or (n_items is not None and seq.max() >= n_items)):
        raise ValueError(f"user {user}: item index out of range 1..{(n_items or 0) - 1} in training sequence")


def prefix_examples(train_seqs: Sequence[np.ndarray], max_len: int, n_items: int | None = None,
                    dtype: type = np.int32, check: bool = True) -> Examples:
    """Every training prefix (length >= 1) and its next item; the target sits at the last position.

    With ``dtype`` int64 and ``check=False`` the same layout applies to any
    per-item values (interaction times): ``.seq`` is then the aligned value matrix.
    """
    total = sum(max(len(s) - 1, 0) for s in train_seqs)
    seq = np.zeros((total, max_len), dtype=dtype)
    target = np.zeros((total, max_len), dtype=np.int32)
    user = np.zeros(total, dtype=np.int64)
    length = np.zeros(total, dtype=np.int64)
    row = 0
    for u, s in enumerate(train_seqs):
        s = np.asarray(s, dtype=np.int64)
        if check:
            _check_items(s, u, n_items)
        for j in range(1, len(s)):
            ctx = s[max(0, j - max_len):j]
            seq[row, max_len - len(ctx):] = ctx
            target[row, -1] = s[j]
            user[row], length[row] = u, len(ctx)
            row += 1
    return Examples(seq, target, user, length)


def onepass_windows(n: int, max_len: int) -> list[tuple[int, int, int]]:
    """Windows over a sequence of ``n`` items as (start, end, first_target): the row holds
    items ``[start, end)`` and predicts the items at ``first_target..end`` (inclusive),
    i.e. targets at input positions ``first_target - 1 .. end - 1``."""
    if n < 2:
        return []
    if n - 1 <= max_len:
        return [(0, n - 1, 1)]
    stride = math.ceil(max_len / 2)
    windows = [(0, max_len, 1)]
    last = max_len  # highest target index predicted so far
    while last < n - 1:
        end_target = min(last + stride, n - 1)
        windows.append((end_target - max_len, end_target, last + 1))
        last = end_target
    return windows


def onepass_examples(train_seqs: Sequence[np.ndarray], max_len: int, n_items: int | None = None,
                     dtype: type = np.int32, check: bool = True) -> Examples:
    """One row per user (more for long sequences, see the module doc) with a target at every position.

    ``dtype`` and ``check`` as for :func:`prefix_examples`.
    """
    plans = [onepass_windows(len(s), max_len) for s in train_seqs]
    total = sum(len(p) for p in plans)
    seq = np.zeros((total, max_len), dtype=dtype)
    target = np.zeros((total, max_len), dtype=np.int32)
    user = np.zeros(total, dtype=np.int64)
    length = np.zeros(total, dtype=np.int64)
    row = 0
    for u, (s, plan) in enumerate(zip(train_seqs, plans)):
        s = np.asarray(s, dtype=np.int64)
        if check:
            _check_items(s, u, n_items)
        for start, end, first in plan:
            width = end - start
            pad = max_len - width
            seq[row, pad:] = s[start:end]
            # input position p (item s[start+p]) predicts s[start+p+1]; keep targets >= first
            nxt = s[start + 1:end + 1]
            keep = np.arange(start + 1, end + 1) >= first
            target[row, pad:] = np.where(keep, nxt, 0)
            user[row], length[row] = u, width
            row += 1
    return Examples(seq, target, user, length)


def training_examples(train_seqs: Sequence[np.ndarray], max_len: int, form: str,
                      n_items: int | None = None, train_times: Sequence[np.ndarray] | None = None) -> Examples:
    """Rows of the chosen form; with ``train_times``, ``Examples.times`` holds the aligned interaction times."""
    builders = {"prefix": prefix_examples, "onepass": onepass_examples}
    if form not in builders:
        raise ValueError(f"unknown train_form {form!r}: expected 'onepass' or 'prefix'")
    examples = builders[form](train_seqs, max_len, n_items)
    if train_times is not None:
        # the same builder over the times lays them out exactly like the items
        examples.times = builders[form](train_times, max_len, dtype=np.int64, check=False).seq
    return examples


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                buckets: bool = True, chunk_batches: int = 64,
                targets: np.ndarray | None = None) -> list[np.ndarray]:
    """Shuffled row indices cut into batches of about ``batch_size`` training targets.

    ``targets`` is the number of (context, target) examples of each row (None:
    one per row, as in the prefix form). Rows are never split: in the given
    order, a row joins the batch in which its middle target falls, so a batch
    holds ``batch_size`` targets give or take half a row, and an epoch has
    about ``sum(targets) / batch_size`` optimiser steps whatever the training
    form (a row with more than ``batch_size`` targets is a batch of its own).

    With ``buckets``, rows are shuffled, then sorted by length inside chunks of
    about ``chunk_batches`` batches, and the batches are shuffled again: every
    epoch still sees a random order and random batch mates, but a batch's rows
    have similar lengths, so trimming removes most of the padding.
    """
    n = len(lengths)
    if targets is None:
        targets = np.ones(n, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    perm = rng.permutation(n)
    if buckets and n:
        rows_per_batch = max(1, round(batch_size * n / max(int(targets.sum()), 1)))
        chunk = rows_per_batch * chunk_batches
        perm = np.concatenate([part[np.argsort(lengths[part], kind="stable")]
                               for part in np.array_split(perm, range(chunk, n, chunk))])
    t = targets[perm]
    middle = np.cumsum(t) - t + t / 2.0
    batch_id = np.floor(middle / batch_size).astype(np.int64)
    cuts = np.flatnonzero(np.diff(batch_id)) + 1
    batches = [b for b in np.split(perm, cuts) if len(b)]
    if not buckets:
        return batches
    return [batches[i] for i in rng.permutation(len(batches))]


def row_targets(examples: "Examples") -> np.ndarray:
    """Training targets per row: 1 for prefix rows, up to ``max_len`` for one-pass rows."""
    return np.count_nonzero(examples.target, axis=1)


def epoch_batches(examples: "Examples", batch_size: int, rng: np.random.Generator,
                  buckets: bool = True) -> list[np.ndarray]:
    """One epoch's batches of row indices, each holding about ``batch_size`` targets."""
    return batch_order(examples.length, batch_size, rng, buckets, targets=row_targets(examples))


def make_batch(seq: np.ndarray, target: np.ndarray | None = None, user: np.ndarray | None = None,
               lengths: np.ndarray | None = None, times: np.ndarray | None = None) -> Batch:
    """A :class:`Batch` of left-padded rows, trimmed to the longest row (at least one column)."""
    width = int(lengths.max()) if lengths is not None and len(lengths) else int((seq != 0).sum(1).max(initial=0))
    width = max(width, 1)
    seq_t = torch.from_numpy(np.ascontiguousarray(seq[:, -width:])).long()
    tgt_t = None if target is None else torch.from_numpy(np.ascontiguousarray(target[:, -width:])).long()
    user_t = None if user is None else torch.from_numpy(np.asarray(user)).long()
    times_t = None if times is None else torch.from_numpy(np.ascontiguousarray(times[:, -width:])).long()
    return Batch(seq=seq_t, target=tgt_t, user=user_t, timestamps=times_t)


def iterate_batches(examples: Examples, batches: Sequence[np.ndarray]) -> Iterator[Batch]:
    """The :class:`Batch` of each row-index array of ``batches`` (see :func:`epoch_batches`)."""
    for idx in batches:
        times = None if examples.times is None else examples.times[idx]
        yield make_batch(examples.seq[idx], examples.target[idx], examples.user[idx], examples.length[idx], times)
