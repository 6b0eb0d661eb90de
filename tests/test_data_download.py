"""download_file against a local HTTP server: resume, Range ignored, checks, errors leave no file."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from sgp4sr.data.download import DownloadError, download_file

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    honour_range = True
    flaky_left = 0  # how many more /flaky requests are cut off half-way
    ranges: list = []

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        cls = type(self)
        cls.ranges.append(self.headers.get("Range"))
        if self.path == "/missing":
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and cls.honour_range:
            start = int(rng.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/flaky" and cls.flaky_left > 0:
            cls.flaky_left -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    _Handler.honour_range, _Handler.flaky_left, _Handler.ranges = True, 0, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _fetch(url, dest, **kw):
    return download_file(url, dest, progress=False, backoff=0.01, timeout=5, **kw)


def test_plain_download_with_checks(server, tmp_path):
    dest = _fetch(f"{server}/file", tmp_path / "sub" / "f.bin", sha256=SHA, size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    # Present and valid: no request is made.
    before = len(_Handler.ranges)
    _fetch(f"{server}/file", dest, sha256=SHA)
    assert len(_Handler.ranges) == before


def test_resume_partial_file_with_range(server, tmp_path):
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:1000])
    _fetch(f"{server}/file", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.ranges == ["bytes=1000-"]


def test_server_ignoring_range_restarts(server, tmp_path):
    _Handler.honour_range = False
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"garbage that must not survive")
    _fetch(f"{server}/file", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD


def test_broken_connection_is_retried_and_resumed(server, tmp_path):
    _Handler.flaky_left = 1
    dest = _fetch(f"{server}/flaky", tmp_path / "f.bin", sha256=SHA, retries=2)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.ranges[0] is None and _Handler.ranges[1].startswith("bytes=")


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match=r"sha256 .* expected 0{64}.*place it at"):
        _fetch(f"{server}/file", dest, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match=r"size 102400 bytes, expected 5"):
        _fetch(f"{server}/file", tmp_path / "f.bin", size=5)
    assert list(tmp_path.iterdir()) == []


def test_404_is_not_retried_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match=r"could not download http://127\.0\.0\.1:\d+/missing: HTTP 404"):
        _fetch(f"{server}/missing", tmp_path / "f.bin", retries=3)
    assert _Handler.ranges == [None]
    assert list(tmp_path.iterdir()) == []


def test_connection_refused(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match=rf"127\.0\.0\.1:{port}/f after 2 attempts.*Refused.*{dest}"):
        _fetch(f"http://127.0.0.1:{port}/f", dest, retries=1)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_wrong_checksum_is_an_error(tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"x")
    with pytest.raises(DownloadError, match="exists but has sha256"):
        _fetch("http://127.0.0.1:1/never-contacted", dest, sha256=SHA)
