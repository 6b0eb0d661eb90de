"""Import an already split RecBole benchmark folder as our ``data/`` folder.

This is how the authors' exact split is reproduced: its files are checked
(:func:`sgp4sr.data.load.load_split_files`), each user's full sequence is
rebuilt as training + validation + test, and the folder is written by the
same code as our own splits. Tokens are kept; timestamps are positions
(the files carry no times), so the chronological leave-one-out split gives
back exactly the published split. Item metadata columns are empty strings.

A published split may hold validation / test items that occur in no training
sequence (an ID model can never rank them right): their users are counted and
logged here and in ``stats.json``; ``unseen_targets: drop`` removes them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from sgp4sr.data.load import SplitData, load_split_files
from sgp4sr.data.split import write_split

log = logging.getLogger(__name__)


def split_to_frame(data: SplitData) -> pd.DataFrame:
    """Long table ``user, item, timestamp, rating`` of every event (train, valid, test)."""
    targets = np.stack([data.valid_items, data.test_items], axis=1)
    item_idx = np.concatenate([np.concatenate([seq, targets[u]]) for u, seq in enumerate(data.train_seqs)])
    lengths = np.array([len(seq) + 2 for seq in data.train_seqs])
    user_idx = np.repeat(np.arange(data.n_users), lengths)
    # Position within the user's sequence: a running index minus each user's start.
    times = np.arange(len(item_idx)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pd.DataFrame({
        "user": data.user_tokens[user_idx].astype(str),
        "item": data.item_tokens[item_idx].astype(str),
        "timestamp": times.astype(np.int64),
        "rating": np.full(len(user_idx), np.nan, dtype=np.float32),
    })


def import_benchmark(train: str | Path | None, valid: str | Path, test: str | Path, out_dir: str | Path,
                     unseen: str = "keep") -> pd.DataFrame:
    """Check the three atomic files and write ``out_dir`` as a regular data folder.

    ``unseen`` is the ``unseen_targets`` policy: ``keep`` the users whose
    validation / test item is in no training sequence (counted, logged) or ``drop`` them.
    """
    files = {"train": Path(train) if train else None, "valid": Path(valid), "test": Path(test)}
    data = load_split_files(files)
    frame = split_to_frame(data)
    repeats = frame.duplicated(["user", "item"]).sum()
    if repeats:
        log.warning("%d repeated user-item event(s) kept as published", repeats)
    return write_split(out_dir, frame, None, unseen)
