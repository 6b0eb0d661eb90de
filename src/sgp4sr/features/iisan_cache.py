"""IISAN's cache of the frozen encoders' per-layer hidden states (``results/<ds>/features/iisan_hidden.npz``).

The IISAN model (:mod:`sgp4sr.models.iisan`) trains side adapters on these
states; the encoders themselves never run in a training job. The cache is a
features-stage artefact: the ``iisan_cache`` rule runs ``sgp4sr features
iisan-cache`` over the split's items and the raw images (declared inputs; the
images go through the same content-keyed image cache as the ``image``
features job, :func:`sgp4sr.features.images.fetch_images`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sgp4sr.io import atomic_path

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_IMAGE_MODEL = "ViT-B-32"


@torch.no_grad()
def text_hidden_states(model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(n, layers + 1, d) mask-mean-pooled hidden states of a SentenceTransformer's backbone,
    embeddings included (MiniLM pools by the mean, so each layer is pooled the same way)."""
    backbone, tokenizer = model[0].auto_model, model.tokenizer
    device = next(backbone.parameters()).device
    rows = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                           max_length=model.max_seq_length, return_tensors="pt").to(device)
        states = backbone(**tokens, output_hidden_states=True).hidden_states
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        pooled = [(h.float() * mask).sum(1) / mask.sum(1).clamp(min=1) for h in states]
        rows.append(torch.stack(pooled, dim=1).cpu().numpy())
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0, 0), np.float32)


@torch.no_grad()
def image_hidden_states(encoder: Any, pixels: torch.Tensor) -> np.ndarray:
    """(n, blocks + 1, width) class-token states of an open_clip ViT: the input to the first
    block (after ``ln_pre``) and the output of every residual block."""
    visual = encoder.model.visual
    batch_first = getattr(visual.transformer, "batch_first", True)
    states: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        out = output[0] if isinstance(output, tuple) else output
        states.append(out[:, 0] if batch_first else out[0])

    hooks = [visual.ln_pre.register_forward_hook(keep)]
    hooks += [block.register_forward_hook(keep) for block in visual.transformer.resblocks]
    try:
        encoder.model.encode_image(pixels.to(encoder.device, encoder.dtype))
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(states, dim=1).float().cpu().numpy()


def build_hidden_state_cache(items_path: str | os.PathLike, out: str | os.PathLike, *,
                             images_dir: str | os.PathLike | None = None,
                             download_dir: str | os.PathLike = ".", text_model: str = DEFAULT_TEXT_MODEL,
                             image_model: str = DEFAULT_IMAGE_MODEL, image_pretrained: str | None = None,
                             fields: Sequence[str] = ("title", "brand", "categories", "description"),
                             seed: int = 0, device: str = "auto", batch_size: int = 64,
                             text_encoder: Any = None, image_encoder: Any = None) -> Path:
    """Run the frozen encoders once over ``items.parquet`` and the image cache; write an ``.npz``
    with ``text`` and ``image`` (n_items, layers, d) float16 and ``text_found``/``image_found``.

    Items without text or a decodable image keep zero states (their ``found`` flag is False).
    ``text_encoder``/``image_encoder`` (already loaded) skip the loading, for tests.
    """
    from sgp4sr.features.build import read_items
    from sgp4sr.features.images import fetch_images, image_batches
    from sgp4sr.features.text import item_texts, load_sentence_model

    items = read_items(items_path)
    idx = items["item_idx"].to_numpy()
    n_items = int(idx.max()) + 1
    texts = item_texts(items, fields)
    text_model_obj = text_encoder or load_sentence_model(text_model, device)
    has_text = np.array([bool(t) for t in texts])
    chosen = [t for t, ok in zip(texts, has_text) if ok]
    text_states = text_hidden_states(text_model_obj, chosen, batch_size)
    text = np.zeros((n_items,) + text_states.shape[1:], np.float16)
    text[idx[has_text]] = text_states

    if image_encoder is None:
        from sgp4sr.features.clip import load_clip
        image_encoder = load_clip(image_model, image_pretrained, seed=seed, device=device)
    if images_dir is None:
        raise ValueError("iisan needs the image cache folder (images_dir) to read the raw images")
    fetched = fetch_images(items, download_dir, images_dir, progress=False)
    width, depth = image_encoder.model.visual.transformer.width, len(image_encoder.model.visual.transformer.resblocks)
    image = np.zeros((n_items, depth + 1, width), np.float16)
    image_found = np.zeros(n_items, bool)
    ok = [(i, p) for i, p, s in zip(idx, fetched["path"], fetched["status"]) if s == "ok"]
    rows_of = np.array([i for i, _ in ok], dtype=np.int64)
    statuses = ["ok"] * len(ok)  # the features stage's decoder (undecodable images are skipped, as there)
    for positions, pixels in image_batches([p for _, p in ok], image_encoder.preprocess, statuses,
                                           batch_size=batch_size):
        rows = rows_of[positions]
        image[rows] = image_hidden_states(image_encoder, pixels)
        image_found[rows] = True
    text_found = np.zeros(n_items, bool)
    text_found[idx[has_text]] = True
    log.info("iisan cache: text states %s for %d items, image states %s for %d items",
             text.shape[1:], int(text_found.sum()), image.shape[1:], int(image_found.sum()))
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, text=text, image=image, text_found=text_found, image_found=image_found)
    return Path(out)
