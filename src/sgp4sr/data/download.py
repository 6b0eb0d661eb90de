"""Robust HTTP(S) download: retries with back-off, resume, checks, atomic rename.

The Amazon dumps are hundreds of MB on slow academic servers, so a broken
connection must not mean starting over: bytes go to ``<dest>.part`` and a
retry (or a later run) asks for the rest with a ``Range`` request. A server
that ignores ``Range`` (answers 200 instead of 206) is handled by restarting
from byte 0. ``dest`` itself only ever appears complete and verified.

What is left behind on failure: never ``dest``. ``<dest>.part`` is kept only
after a *transient* failure (connection lost, timeout, 5xx) so the next run
resumes; it is deleted after a permanent failure (4xx, size or checksum
mismatch). Snakemake does not see ``.part`` files (not a declared output).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK = 1 << 16
USER_AGENT = "sgp4sr-workflow/0.1 (+https://github.com/changhongli1/SGP4SR reproduction)"


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message says where to put it by hand."""


class _Transient(Exception):
    """A failure worth retrying (network, timeout, 5xx, truncated body)."""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _manual_hint(url: str, dest: Path) -> str:
    return f"Without network access, fetch {url} elsewhere and place it at {dest.resolve()}, then rerun."


def _verify(path: Path, sha256: str | None, size: int | None) -> str | None:
    """None when ``path`` passes the given checks, else the reason."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} bytes, expected {size}"
    if sha256 is not None:
        actual = sha256_of(path)
        if actual.lower() != sha256.lower():
            return f"sha256 {actual}, expected {sha256.lower()}"
    return None


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One attempt: continue ``part`` from its current length (or restart on 200)."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Our partial file is as long as (or longer than) the resource: restart cleanly.
            part.unlink()
            raise _Transient(f"HTTP 416 for a resume from byte {offset}; restarting") from exc
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Transient(f"{type(reason).__name__}: {reason}") from exc

    with response:
        status = getattr(response, "status", None) or 200
        if offset and status != 206:
            log.info("server ignored the Range request (status %s); restarting %s from byte 0", status, url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        mode = "ab" if offset else "wb"
        written = offset
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[:-5],
                   disable=not progress, leave=False)
        try:
            with open(part, mode) as fh:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (socket.timeout, ConnectionError, http.client.HTTPException) as exc:
                        raise _Transient(f"connection lost after {written} bytes: {exc}") from exc
                    if not block:
                        break
                    fh.write(block)
                    written += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
        if total is not None and written < total:
            raise _Transient(f"connection closed after {written} of {total} bytes")


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    An existing ``dest`` that passes the checks is kept (no network access).
    Up to ``retries`` extra attempts follow transient failures, waiting
    ``backoff * 2**attempt`` seconds; each resumes the ``.part`` file.
    Raises :class:`DownloadError` naming the URL and the manual fallback.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        problem = _verify(dest, sha256, size)
        if problem is None:
            log.info("%s already present, not downloading", dest)
            return dest
        raise DownloadError(f"{dest} exists but has {problem}; delete it to download {url} again")
    part = dest.with_name(dest.name + ".part")
    last_error = "no attempt made"
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except _Transient as exc:
            last_error = str(exc)
            if attempt < retries:
                wait = backoff * 2**attempt
                log.warning("download of %s failed (%s); retry %d/%d in %.1fs", url, exc, attempt + 1, retries, wait)
                time.sleep(wait)
        except DownloadError as exc:
            _discard(part)
            raise DownloadError(f"could not download {url}: {exc}. {_manual_hint(url, dest)}") from None
    else:
        if part.exists() and part.stat().st_size == 0:
            _discard(part)
        kept = f" (partial data kept in {part} for a resume)" if part.exists() else ""
        raise DownloadError(
            f"could not download {url} after {retries + 1} attempts: {last_error}{kept}. {_manual_hint(url, dest)}"
        )
    problem = _verify(part, sha256, size)
    if problem is not None:
        _discard(part)
        raise DownloadError(f"downloaded {url} but it has {problem}; nothing was kept. {_manual_hint(url, dest)}")
    os.replace(part, dest)
    log.info("downloaded %s -> %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
