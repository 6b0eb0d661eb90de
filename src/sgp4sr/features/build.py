"""One modality end to end: items table -> feature matrix + per-item manifest.

Each modality is its own Snakemake job (a CLIP image run and a MiniLM text
run have nothing to share), so each writes ``<modality>.npy`` and
``<modality>.manifest.parquet``; :func:`merge_manifests` joins the latter
into the dataset's ``manifest.parquet``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from sgp4sr.features.handcrafted import HISTOGRAM_DEFAULTS
from sgp4sr.features.matrix import check_feature_matrix, fill_fallback

log = logging.getLogger(__name__)

# Defaults of the keys under datasets.<ds>.modalities.<name> (config/README.md lists them).
#: encoders that read an item's image pixels (the rules give their jobs the raw images as inputs)
PIXEL_ENCODERS = ("clip", "histogram")

DEFAULTS: dict[str, dict[str, Any]] = {
    "sentence": {"model": "sentence-transformers/all-MiniLM-L6-v2",
                 "fields": ["title", "brand", "categories", "description"],
                 "max_chars": None, "batch_size": 64, "fallback": "mean"},
    "clip": {"input": "image", "model": "ViT-B-32", "pretrained": "openai",
             "fields": ["title", "brand", "categories", "description"], "max_chars": None,
             "batch_size": 64, "fallback": "mean", "min_image_size": 16, "max_parallel_downloads": 8},
    # A colour + gradient histogram of the pixels (features/handcrafted.py): no weights, for offline demos.
    "histogram": {"input": "image", **HISTOGRAM_DEFAULTS, "batch_size": 64, "fallback": "mean",
                  "min_image_size": 16, "max_parallel_downloads": 8},
    "published": {"fallback": "mean"},
    "benchmark": {"fallback": "mean"},
}
MANIFEST_COLUMNS = ["item_idx", "item", "modality", "found", "source", "status", "fallback"]


def resolve_modality(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The modality's config with every default filled in (``pretrained: null`` stays null)."""
    encoder = cfg.get("encoder")
    if encoder not in DEFAULTS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {', '.join(DEFAULTS)}")
    resolved = {**DEFAULTS[encoder], **dict(cfg)}
    if encoder == "histogram" and resolved["input"] != "image":
        raise ValueError(f"encoder histogram reads images only, got input {resolved['input']!r}")
    return resolved


def source_file_for(dataset_cfg: Mapping[str, Any], modality: str, download_dir: str) -> str | None:
    """The file a ``published``/``benchmark`` modality reads, or None for the encoders.

    Order: the modality's own ``file``; the dataset's ``files`` entry (the
    ``image_features`` role for published, the modality's name for benchmark),
    which the download rule stores as ``<download_dir>/<basename of URL>``; for
    a benchmark source, ``<path>/<name>.<modality>.npy``.
    """
    cfg = dataset_cfg["modalities"][modality]
    encoder = cfg["encoder"]
    if encoder not in ("published", "benchmark"):
        return None
    if cfg.get("file"):
        return str(cfg["file"])
    role = "image_features" if encoder == "published" else modality
    entry = dataset_cfg.get("files", {}).get(role)
    if entry:
        return f"{download_dir}/{os.path.basename(urlparse(entry['url']).path)}"
    if encoder == "benchmark" and dataset_cfg.get("path") and dataset_cfg.get("name"):
        return f"{dataset_cfg['path']}/{dataset_cfg['name']}.{modality}.npy"
    raise ValueError(
        f"modality {modality!r} (encoder {encoder}) needs a file: set modalities.{modality}.file or "
        f"files.{role}" + (" or the dataset's path and name" if encoder == "benchmark" else "")
    )


def read_items(path: str | os.PathLike) -> pd.DataFrame:
    """``items.parquet`` sorted by ``item_idx``, checked for the index contract (1..n-1, unique)."""
    items = pd.read_parquet(path)
    for column in ("item_idx", "item"):
        if column not in items.columns:
            raise ValueError(f"{path}: no column {column!r} (columns: {', '.join(items.columns)})")
    items = items.sort_values("item_idx", kind="stable").reset_index(drop=True)
    idx = items["item_idx"].to_numpy()
    if len(idx) == 0:
        raise ValueError(f"{path}: no items")
    if idx.min() < 1 or len(np.unique(idx)) != len(idx):
        raise ValueError(f"{path}: item_idx must be unique and >= 1 (0 is padding)")
    for column in ("title", "description", "categories", "brand", "image_url"):
        if column not in items.columns:
            items[column] = ""
    return items


def build_modality(
    items: pd.DataFrame,
    modality: str,
    cfg: Mapping[str, Any],
    *,
    seed: int = 0,
    download_dir: str | os.PathLike = ".",
    cache_dir: str | os.PathLike = "images",
    source_file: str | os.PathLike | None = None,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Encode one modality for ``items``; returns the float32 matrix and its manifest rows."""
    cfg = resolve_modality(cfg)
    encoder = cfg["encoder"]
    n_items = int(items["item_idx"].max()) + 1
    idx = items["item_idx"].to_numpy()
    manifest = pd.DataFrame({"item_idx": idx.astype(np.int32), "item": items["item"].astype(str)})
    manifest["modality"] = modality

    if encoder in ("sentence", "clip") and (encoder == "sentence" or cfg["input"] == "text"):
        matrix, status = _encode_text(items, cfg, n_items, seed=seed, device=device, progress=progress)
        manifest["source"] = "text"
    elif encoder in PIXEL_ENCODERS:
        matrix, status, sources = _encode_images(items, cfg, n_items, seed=seed, download_dir=download_dir,
                                                 cache_dir=cache_dir, device=device, threads=threads,
                                                 progress=progress)
        manifest["source"] = sources
    elif encoder == "published":
        from sgp4sr.features.published import PUBLISHED_DIM, read_published_features

        if source_file is None:
            raise ValueError(f"modality {modality!r}: encoder published needs the .b file")
        matrix = np.zeros((n_items, PUBLISHED_DIM), np.float32)
        found = read_published_features(source_file, dict(zip(manifest["item"], idx)), matrix, progress=progress)
        status = np.where(found[idx], "ok", "not_in_file")
        manifest["source"] = "published"
    else:
        from sgp4sr.features.benchmark import load_benchmark_features

        if source_file is None:
            raise ValueError(f"modality {modality!r}: encoder benchmark needs a .npy file")
        matrix = load_benchmark_features(source_file, items)
        status = np.full(len(idx), "ok", dtype=object)
        manifest["source"] = "benchmark"

    manifest["status"] = np.asarray(status, dtype=object)
    found_rows = np.zeros(n_items, dtype=bool)
    found_rows[idx[manifest["status"].to_numpy() == "ok"]] = True
    # Item indices that do not occur in items.parquet (none for our splits) count as missing too.
    fell_back = fill_fallback(matrix, found_rows, cfg["fallback"], f"{modality} ({encoder})")
    manifest["found"] = found_rows[idx]
    manifest["fallback"] = np.where(fell_back[idx], cfg["fallback"], "")
    if not manifest["found"].all():
        log.info("%s: missing items by reason: %s", modality,
                 manifest.loc[~manifest["found"], "status"].value_counts().to_dict())
    origin = f", from {source_file}" if source_file is not None and encoder in ("published", "benchmark") else ""
    # Also catches NaN rows inside a published file and fp16 overflow of an encoder on a GPU.
    check_feature_matrix(matrix, f"{modality} features ({encoder}{origin}); row = item_idx", n_rows=n_items,
                         padding_row=True)
    return matrix, manifest[MANIFEST_COLUMNS]


def _encode_text(items, cfg, n_items, *, seed, device, progress):
    from sgp4sr.features.text import item_texts

    texts = item_texts(items, cfg["fields"], cfg["max_chars"])
    has_text = np.array([bool(t) for t in texts])
    chosen = [t for t, ok in zip(texts, has_text) if ok]
    if not chosen:
        raise ValueError(f"no item has any text in the fields {', '.join(cfg['fields'])} "
                         "(a benchmark import without metadata cannot use a text encoder)")
    if cfg["encoder"] == "sentence":
        from sgp4sr.features.text import encode_sentences, load_sentence_model

        model = load_sentence_model(cfg["model"], device)
        emb = encode_sentences(model, chosen, cfg["batch_size"], progress)
    else:
        from sgp4sr.features.clip import load_clip

        emb = load_clip(cfg["model"], cfg["pretrained"], seed=seed, device=device).encode_texts(
            chosen, cfg["batch_size"], progress)
    matrix = np.zeros((n_items, emb.shape[1]), np.float32)
    matrix[items["item_idx"].to_numpy()[has_text]] = emb
    return matrix, np.where(has_text, "ok", "empty_text")


def _image_encoder(cfg, *, seed, device):
    """The loaded image encoder of a resolved ``clip`` or ``histogram`` modality config."""
    if cfg["encoder"] == "histogram":
        from sgp4sr.features.handcrafted import HistogramEncoder

        return HistogramEncoder.from_config(cfg)
    from sgp4sr.features.clip import load_clip

    return load_clip(cfg["model"], cfg["pretrained"], seed=seed, device=device)


def _encode_images(items, cfg, n_items, *, seed, download_dir, cache_dir, device, threads, progress):
    from sgp4sr.features.images import fetch_images, image_batches

    fetched = fetch_images(items, download_dir, cache_dir, max_parallel=cfg["max_parallel_downloads"],
                           progress=progress)
    status = fetched["status"].to_numpy(dtype=object).copy()
    todo = np.flatnonzero(status == "ok")
    if len(todo) == 0:
        raise ValueError(f"none of the {len(items)} items has a usable image (statuses: "
                         f"{fetched['status'].value_counts().to_dict()})")
    encoder = _image_encoder(cfg, seed=seed, device=device)
    paths = fetched["path"].to_numpy()[todo].tolist()
    decode_status = ["ok"] * len(todo)
    positions: list[np.ndarray] = []
    batches = image_batches(paths, encoder.preprocess, decode_status, min_size=cfg["min_image_size"],
                            batch_size=cfg["batch_size"], threads=threads)
    matrix = np.zeros((n_items, encoder.dim), np.float32)
    idx = items["item_idx"].to_numpy()

    def pixels():
        for pos, tensor in batches:
            positions.append(pos)
            yield tensor

    for pos_emb in encoder.encode_image_batches(pixels(), total=len(todo), progress=progress):
        matrix[idx[todo[positions[-1]]]] = pos_emb
    status[todo] = decode_status
    return matrix, status, fetched["source"].to_numpy()


def merge_manifests(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Join per-modality manifests into one row per item: ``<modality>_{found,source,status,fallback}``."""
    if not frames:
        raise ValueError("no modality manifests to merge")
    merged: pd.DataFrame | None = None
    for frame in frames:
        names = frame["modality"].unique()
        if len(names) != 1:
            raise ValueError(f"a modality manifest must hold one modality, got {list(names)}")
        name = names[0]
        part = frame[["item_idx", "item", "found", "source", "status", "fallback"]].rename(
            columns={c: f"{name}_{c}" for c in ("found", "source", "status", "fallback")})
        if merged is None:
            merged = part
            continue
        if f"{name}_found" in merged.columns:
            raise ValueError(f"modality {name!r} appears in two manifests")
        before = len(merged)
        merged = merged.merge(part, on=["item_idx", "item"], how="outer", validate="one_to_one")
        if len(merged) != before or len(merged) != len(part):
            raise ValueError(f"manifest of {name!r} covers different items than the others")
    assert merged is not None
    return merged.sort_values("item_idx").reset_index(drop=True)


def write_outputs(matrix: np.ndarray, manifest: pd.DataFrame, out: str | Path, manifest_out: str | Path) -> None:
    from sgp4sr.io import save_npy, write_parquet

    save_npy(out, matrix.astype(np.float32, copy=False))
    write_parquet(manifest_out, manifest)
