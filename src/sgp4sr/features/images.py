"""Item images: resolve each item's ``image_url`` into a local cache, then decode.

Images are fetched into ``resources/images/<ds>/``, a cache keyed by the item,
a hash of its URL *and the source's content*: a local file's sha256, or a
download's ETag / Last-Modified (asked with a HEAD request; a server that gives
neither, or one that cannot be reached, leaves the cached copy in use). So a
changed URL, a local image regenerated at the same path and a changed remote
image are all fetched again, and the superseded copy is removed. A cached copy
that no longer decodes is fetched again once; if it still does not decode, it
is reported (and becomes ``undecodable`` in the manifest).

Everything that can go wrong per item - no URL, a failed download, a file that
is not an image, a placeholder pixel - becomes a status in the manifest instead
of an exception, because one broken thumbnail must not stop 20,000 others.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import shutil
import threading
import urllib.error
import urllib.request
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
#: seconds a HEAD request (the check whether a cached download changed) may take
HEAD_TIMEOUT = 10.0


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


def cache_name(item: str, url: str, version: str | None = None) -> str:
    """File name in the cache: readable item id + URL hash (+ a hash of the content ``version``) + extension.

    ``version`` identifies the source's content (a local file's sha256, a download's ETag or
    Last-Modified); None when unknown.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(item))[:80] or "item"
    suffix = Path(urlparse(url).path).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ".img"
    digest = hashlib.sha1(url.encode("utf-8")).hexdigest()[:10]
    tag = f"-{hashlib.sha1(version.encode('utf-8')).hexdigest()[:12]}" if version else ""
    return f"{safe}-{digest}{tag}{suffix}"


_ENTRY = re.compile(r"^(?P<base>.+-[0-9a-f]{10})(?:-[0-9a-f]{12})?(?P<suffix>\.[a-z0-9]{1,5})$")


def _entry_group(name: str) -> tuple[str, str] | None:
    """Entries of one item and URL share this (any content version); None for other files."""
    match = _ENTRY.match(name)
    return (match["base"], match["suffix"]) if match else None


class _CacheIndex:
    """The cache folder's entries grouped by item and URL, listed once (thousands of files)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.groups: dict[tuple[str, str], set[str]] = {}
        for entry in folder.iterdir():
            group = _entry_group(entry.name)
            if group is not None and entry.is_file():
                self.groups.setdefault(group, set()).add(entry.name)

    def newest(self, item: str, url: str) -> Path | None:
        """The most recently written entry of ``item`` and ``url`` (any version), if any."""
        names = self.groups.get(_entry_group(cache_name(item, url)) or ("", ""), set())
        paths = [self.folder / n for n in names if (self.folder / n).is_file()]
        return max(paths, key=lambda p: p.stat().st_mtime_ns, default=None)

    def keep_only(self, dest: Path) -> None:
        """``dest`` was just written: remove the superseded versions of the same item and URL."""
        group = _entry_group(dest.name)
        if group is None:
            return
        for name in self.groups.get(group, set()) - {dest.name}:
            (self.folder / name).unlink(missing_ok=True)
        self.groups[group] = {dest.name}


def local_version(path: Path) -> str:
    """A local image's content version: its sha256 (robust to rewrites within one mtime tick)."""
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


def remote_version(url: str, timeout: float = HEAD_TIMEOUT) -> str | None:
    """The server's validator for ``url``: its ETag, else its Last-Modified; None when it gives neither.

    An HTTP error answer (404, 405 for HEAD, ...) also gives None: the download reports real errors.
    Raises ``OSError`` when the server cannot be reached.
    """
    try:
        from sgp4sr.data.download import USER_AGENT
    except ImportError:  # the data stage provides HTTP downloads; its user agent is a courtesy
        USER_AGENT = "sgp4sr"
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            headers = response.headers
    except urllib.error.HTTPError:
        return None
    except http.client.HTTPException as exc:
        raise OSError(f"{url}: {exc}") from exc
    etag, modified = headers.get("ETag"), headers.get("Last-Modified")
    return f"etag:{etag}" if etag else f"modified:{modified}" if modified else None


def _remote_versions(urls: Sequence[str], max_parallel: int) -> list[str | None]:
    """:func:`remote_version` of each URL, in parallel; after the first unreachable server, None for the rest."""
    offline = threading.Event()

    def one(url: str) -> str | None:
        if offline.is_set():
            return None
        try:
            return remote_version(url)
        except (OSError, ValueError) as exc:
            if not offline.is_set():
                offline.set()
                log.warning("cannot check cached image downloads for changes (%s: %s); using the cached copies "
                            "as they are", url, exc)
            return None

    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        return list(pool.map(one, urls))


def _decodes(path: str | Path) -> bool:
    """Whether ``path`` decodes as an image (JPEGs at a reduced scale: every byte is still read)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))
            img.load()
        return True
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


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
    Cache entries carry the source's content version (module docstring); a cached copy that
    does not decode is fetched again once.
    """
    download_dir, cache_dir = Path(download_dir), Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    index = _CacheIndex(cache_dir)
    urls = items["image_url"].fillna("").astype(str).str.strip().tolist()
    records: list[dict] = []
    sources: dict[int, Path] = {}  # record -> its local source file
    remote: list[int] = []  # records with an http URL
    cached: list[int] = []  # records served from an entry written before this call
    for item, url in zip(items["item"].astype(str), urls):
        try:
            kind = url_kind(url)
        except ValueError as exc:  # one odd URL is that item's problem, not the dataset's
            log.debug("item %s: %s", item, exc)
            kind = "other"
        rec = {"item": item, "source": kind, "status": OK, "path": ""}
        i = len(records)
        records.append(rec)
        if kind in ("none", "other"):
            rec["status"] = "no_url" if kind == "none" else "bad_url"
        elif kind == "http":
            remote.append(i)
        elif (src := _local_source(url, kind, download_dir)).is_file():
            sources[i] = src
            dest = cache_dir / cache_name(item, url, local_version(src))
            rec["path"] = str(dest)
            if dest.exists():
                cached.append(i)
            else:
                _copy_into_cache(src, dest)
                index.keep_only(dest)
        elif (old := index.newest(item, url)) is not None:  # the raw file is gone: the cache still serves it
            rec["path"] = str(old)
            cached.append(i)
        else:
            rec["status"] = "missing"
            log.debug("item %s: image file %s not found", item, src)
    pending = _place_remote(records, remote, urls, index, max_parallel, cached)
    if pending:
        _download_all(records, pending, urls, max_parallel, progress)
        for i in pending:
            if records[i]["status"] == OK:
                index.keep_only(Path(records[i]["path"]))
    refetched = _refetch_undecodable(records, cached, sources, urls, max_parallel, progress)
    frame = pd.DataFrame.from_records(records, columns=["item", "source", "status", "path"])
    counts = frame["status"].value_counts().to_dict()
    log.info("images of %d items: %s (%d downloaded now, %d fetched again)", len(frame), counts, len(pending),
             refetched)
    return frame


def _place_remote(records: list[dict], remote: list[int], urls: Sequence[str], index: _CacheIndex,
                  max_parallel: int, cached: list[int]) -> list[int]:
    """Each http record's cache path by the server's current version; returns the records to download."""
    pending = []
    for i, version in zip(remote, _remote_versions([urls[i] for i in remote], max_parallel)):
        rec = records[i]
        dest = index.folder / cache_name(rec["item"], urls[i], version)
        old = index.newest(rec["item"], urls[i]) if version is None else None
        if dest.exists():
            cached.append(i)
        elif old is not None:  # the version is unknown: the copy we have is the best guess
            dest = old
            cached.append(i)
        else:
            pending.append(i)
        rec["path"] = str(dest)
    return pending


def _refetch_undecodable(records: list[dict], cached: list[int], sources: dict[int, Path], urls: Sequence[str],
                         max_parallel: int, progress: bool) -> int:
    """Fetch each cached copy that does not decode once more; report those that still do not. Returns the count."""
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        bad = [i for i, ok in zip(cached, pool.map(lambda i: _decodes(records[i]["path"]), cached)) if not ok]
    if not bad:
        return 0
    downloads = []
    for i in bad:
        rec = records[i]
        Path(rec["path"]).unlink(missing_ok=True)
        if rec["source"] == "http":
            downloads.append(i)
        elif i in sources and sources[i].is_file():
            _copy_into_cache(sources[i], Path(rec["path"]))
        else:
            rec.update(status="missing", path="")  # the raw file is gone and its copy is unusable
    if downloads:
        _download_all(records, downloads, urls, max_parallel, progress)
    still = [records[i]["item"] for i in bad if records[i]["status"] == OK and not _decodes(records[i]["path"])]
    shown = f": {', '.join(still[:5])}{' ...' if len(still) > 5 else ''}" if still else ""
    log.warning("%d cached images could not be decoded and were fetched again; %d still cannot be (reported as "
                "undecodable)%s", len(bad), len(still), shown)
    return len(bad)


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
