"""Import an already split RecBole benchmark folder as our ``data/`` folder.

This is how the authors' exact split is reproduced: its files are checked
(:func:`sgp4sr.data.load.load_split_files`), each user's full sequence is
rebuilt as training + validation + test, and the folder is written by the
same code as our own splits. Tokens are kept; timestamps are positions
(the files carry no times), so the chronological leave-one-out split gives
back exactly the published split. Item metadata columns are empty strings.
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
    users, items, times = [], [], []
    for u, seq in enumerate(data.train_seqs):
        full = np.r_[seq, data.valid_items[u], data.test_items[u]]
        users.append(np.full(len(full), u))
        items.append(full)
        times.append(np.arange(len(full), dtype=np.int64))
    user_idx, item_idx = np.concatenate(users), np.concatenate(items)
    return pd.DataFrame({
        "user": data.user_tokens[user_idx].astype(str),
        "item": data.item_tokens[item_idx].astype(str),
        "timestamp": np.concatenate(times),
        "rating": np.full(len(user_idx), np.nan, dtype=np.float32),
    })


def import_benchmark(train: str | Path | None, valid: str | Path, test: str | Path, out_dir: str | Path) -> pd.DataFrame:
    """Check the three atomic files and write ``out_dir`` as a regular data folder."""
    files = {"train": Path(train) if train else None, "valid": Path(valid), "test": Path(test)}
    data = load_split_files(files)
    frame = split_to_frame(data)
    repeats = frame.duplicated(["user", "item"]).sum()
    if repeats:
        log.warning("%d repeated user-item event(s) kept as published", repeats)
    return write_split(out_dir, frame, None)
