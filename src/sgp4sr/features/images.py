"""Item images: resolve each item's ``image_url`` into a local cache, then decode.

Images are fetched once into ``resources/images/<ds>/`` (a cache keyed by the
item and a hash of its URL, so a changed URL is fetched again) and everything
that can go wrong per item - no URL, a failed download, a file that is not an
image, a placeholder pixel - becomes a status in the manifest instead of an
exception, because one broken thumbnail must not stop 20,000 others.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sgp4sr.io import atomic_path

log = logging.getLogger(__name__)

DEFAULT_MIN_IMAGE_SIZE = 16
DEFAULT_MAX_PARALLEL_DOWNLOADS = 8
OK = "ok"


def url_kind(url: str) -> str:
    """``none`` (empty), ``http`` (http/https), ``file`` (file:// URL) or ``local`` (a path)."""
    url = (url or "").strip()
    if not url:
        return "none"
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        return "http"
    if scheme == "file":
        return "file"
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive
        raise ValueError(f"unsupported image URL scheme {scheme!r} in {url!r}")
    return "local"


def cache_name(item: str, url: str) -> str:
    """File name in the cache: readable item id + URL hash + the URL's extension."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(item))[:80] or "item"
    suffix = Path(urlparse(url).path).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ".img"
    digest = hashlib.sha1(url.encode("utf-8")).hexdigest()[:10]
    return f"{safe}-{digest}{suffix}"


def _local_source(url: str, kind: str, download_dir: Path) -> Path:
    if kind == "file":
        return Path(unquote(urlparse(url).path))
    path = Path(url)
    return path if path.is_absolute() else download_dir / path


def _copy_into_cache(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def fetch_images(
    items: pd.DataFrame,
    download_dir: str | Path,
    cache_dir: str | Path,
    *,
    max_parallel: int = DEFAULT_MAX_PARALLEL_DOWNLOADS,
    progress: bool = True,
) -> pd.DataFrame:
    """Bring every item's image into ``cache_dir``; returns ``item, source, status, path`` per row.

    ``source`` is the URL kind (``none``/``http``/``file``/``local``, ``other`` for an
    unsupported scheme); ``status`` is ``ok``, ``no_url``, ``bad_url``, ``missing``
    (local file absent) or ``download_error``.
    Relative paths are resolved against ``download_dir`` (the dataset's raw folder).
    """
    download_dir, cache_dir = Path(download_dir), Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    urls = items["image_url"].fillna("").astype(str).str.strip().tolist()
    records: list[dict] = []
    pending: list[int] = []
    for item, url in zip(items["item"].astype(str), urls):
        try:
            kind = url_kind(url)
        except ValueError as exc:  # one odd URL is that item's problem, not the dataset's
            log.debug("item %s: %s", item, exc)
            kind = "other"
        rec = {"item": item, "source": kind, "status": OK, "path": ""}
        if kind in ("none", "other"):
            rec["status"] = "no_url" if kind == "none" else "bad_url"
        else:
            dest = cache_dir / cache_name(item, url)
            rec["path"] = str(dest)
            if dest.exists():
                pass
            elif kind == "http":
                pending.append(len(records))
            else:
                src = _local_source(url, kind, download_dir)
                if src.is_file():
                    _copy_into_cache(src, dest)
                else:
                    rec.update(status="missing", path="")
                    log.debug("item %s: image file %s not found", item, src)
        records.append(rec)
    if pending:
        _download_all(records, pending, urls, max_parallel, progress)
    frame = pd.DataFrame.from_records(records, columns=["item", "source", "status", "path"])
    counts = frame["status"].value_counts().to_dict()
    log.info("images of %d items: %s (%d downloaded now)", len(frame), counts, len(pending))
    return frame


def _download_all(records: list[dict], pending: list[int], urls: Sequence[str], max_parallel: int,
                  progress: bool) -> None:
    try:
        from sgp4sr.data.download import DownloadError, download_file
    except ImportError as exc:  # the data stage provides HTTP downloads
        raise RuntimeError(f"{len(pending)} images need HTTP downloads, but sgp4sr.data.download "
                           f"is not available: {exc}") from exc

    def fetch(i: int) -> tuple[int, str | None]:
        try:
            download_file(urls[i], records[i]["path"], progress=False)
            return i, None
        except (DownloadError, OSError) as exc:
            return i, str(exc)

    # download_file logs every file at INFO; for thousands of thumbnails the progress bar says enough.
    download_log = logging.getLogger(download_file.__module__)
    level = download_log.level
    download_log.setLevel(max(level, logging.WARNING))
    try:
        failed = _run_downloads(records, pending, fetch, max_parallel, progress)
    finally:
        download_log.setLevel(level)
    if failed:
        log.warning("%d of %d image downloads failed (see --verbose for each)", failed, len(pending))


def _run_downloads(records: list[dict], pending: list[int], fetch: Callable, max_parallel: int,
                   progress: bool) -> int:
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        for i, error in tqdm(pool.map(fetch, pending), total=len(pending), desc="images", unit="img",
                             disable=not progress):
            if error is not None:
                failed += 1
                records[i].update(status="download_error", path="")
                log.debug("item %s: %s", records[i]["item"], error)
    return failed


def load_image(path: str | Path, min_size: int = DEFAULT_MIN_IMAGE_SIZE):
    """Decode ``path`` to RGB; returns ``(image, "ok")`` or ``(None, "undecodable" | "tiny" | "missing")``."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if min(img.size) < min_size:
                return None, "tiny"
            return img.convert("RGB"), OK
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        log.debug("%s: cannot decode: %s", path, exc)
        return None, "undecodable"


def image_batches(
    paths: Sequence[str],
    preprocess: Callable,
    statuses: list[str],
    *,
    min_size: int = DEFAULT_MIN_IMAGE_SIZE,
    batch_size: int = 64,
    threads: int = 1,
) -> Iterator[tuple[np.ndarray, "object"]]:
    """Decode and preprocess ``paths`` in batches; yields ``(positions, pixel tensor)``.

    ``statuses[i]`` is overwritten with the decode status of ``paths[i]``; the
    positions say which inputs each batch holds (failed images are skipped).
    Decoding runs in ``threads`` threads: PIL and the resize release the GIL.
    """
    import torch

    def one(path: str):
        image, status = load_image(path, min_size)
        return status, (preprocess(image) if image is not None else None)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(paths), batch_size):
            chunk = range(start, min(start + batch_size, len(paths)))
            done = list(pool.map(one, (paths[i] for i in chunk)))
            keep = []
            tensors = []
            for i, (status, tensor) in zip(chunk, done):
                statuses[i] = status
                if tensor is not None:
                    keep.append(i)
                    tensors.append(tensor)
            if tensors:
                yield np.asarray(keep, dtype=np.int64), torch.stack(tensors)
