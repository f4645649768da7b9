"""Downloads, cache, mirror and hash checks, against a local HTTP server on the loopback interface."""
import concurrent.futures
import fcntl
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from brainscore_plugins import errors, hub, settings
from region_commitment import atomic

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files with Range support; ``truncate_at`` cuts the body short while promising the full length, ``gate``
    (an event) holds each response until it is set; ``gets`` counts the requests."""
    truncate_at = None
    range_requests = []
    gate = None
    gets = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).gets += 1
        if type(self).gate is not None:
            type(self).gate.wait(timeout=10)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            type(self).range_requests.append(start)
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = type(self).truncate_at
        self.wfile.write(body if cut is None else body[:cut])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served" / "checkpoints" / "m"
    root.mkdir(parents=True)
    (root / "ep1.pt").write_bytes(PAYLOAD)
    _Handler.truncate_at, _Handler.range_requests, _Handler.gate, _Handler.gets = None, [], None, 0
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(tmp_path / "served")))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/checkpoints/m/ep1.pt"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(settings.MIRROR, raising=False)
    return tmp_path / "cache"


def test_download_is_cached_and_hash_recorded(server, isolated_cache):
    path = hub.fetch(server, "m/ep1.pt", progress=False)
    assert path == isolated_cache / "m" / "ep1.pt" and path.read_bytes() == PAYLOAD
    record = isolated_cache / "m" / "ep1.pt.sha256"
    assert record.read_text().strip() == hashlib.sha256(PAYLOAD).hexdigest()
    assert not list(isolated_cache.rglob("*.partial"))


def test_published_hash_mismatch_is_refused(server):
    with pytest.raises(errors.ChecksumMismatchError, match="sha256"):
        hub.fetch(server, "m/ep1.pt", sha256="0" * 64, progress=False)


def test_corrupted_cache_file_is_detected_on_later_load(server):
    path = hub.fetch(server, "m/ep1.pt", progress=False)
    path.write_bytes(PAYLOAD[:-1] + b"\x00")
    with pytest.raises(errors.ChecksumMismatchError, match="corrupted"):
        hub.fetch(server, "m/ep1.pt", progress=False)


def test_truncated_download_leaves_only_a_partial_file_and_resumes(server, isolated_cache):
    _Handler.truncate_at = 300_000
    with pytest.raises(errors.WeightsUnavailableError, match="resume|Cannot download"):
        hub.fetch(server, "m/ep1.pt", progress=False)
    assert not (isolated_cache / "m" / "ep1.pt").exists()
    partial = isolated_cache / "m" / "ep1.pt.partial"
    partial_size = partial.stat().st_size
    assert 0 < partial_size < len(PAYLOAD)
    _Handler.truncate_at = None
    path = hub.fetch(server, "m/ep1.pt", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert _Handler.range_requests == [partial_size]  # resumed, not restarted
    assert not partial.exists()


def test_concurrent_downloads_fetch_once(server, isolated_cache, monkeypatch):
    """Two downloads of one file: the second waits on the lock, then finds the finished file (one request)."""
    record = isolated_cache / "m" / "ep1.pt.sha256"
    record.parent.mkdir(parents=True)
    record.write_text(hashlib.sha256(PAYLOAD).hexdigest() + "\n")  # known hash: checked, not written, by both
    lock_calls, second_waits = [], threading.Event()
    flock = fcntl.flock

    def observed_flock(fd, operation):
        lock_calls.append(operation)
        if len(lock_calls) == 2:
            second_waits.set()
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", observed_flock)
    _Handler.gate = second_waits  # the first download is held until the second one is at the lock
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(hub.fetch, server, "m/ep1.pt", progress=False) for _ in range(2)]
        paths = [future.result(timeout=30) for future in futures]
    assert second_waits.is_set() and _Handler.gets == 1
    assert paths == [isolated_cache / "m" / "ep1.pt"] * 2 and paths[0].read_bytes() == PAYLOAD
    assert not list(isolated_cache.rglob("*.partial"))


def test_offline_without_mirror_names_url_and_variable(tmp_path):
    url = "http://127.0.0.1:9/checkpoints/m/ep1.pt"  # discard port: connection refused
    with pytest.raises(errors.WeightsUnavailableError) as error:
        hub.fetch(url, "m/ep1.pt", progress=False)
    assert url in str(error.value) and settings.MIRROR in str(error.value)
    assert not list((tmp_path / "cache").rglob("ep1.pt"))


def test_mirror_is_used_and_verified(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "m").mkdir(parents=True)
    (mirror / "m" / "ep1.pt").write_bytes(PAYLOAD)
    monkeypatch.setenv(settings.MIRROR, str(mirror))
    url = "http://127.0.0.1:9/checkpoints/m/ep1.pt"
    assert hub.fetch(url, "m/ep1.pt", progress=False) == mirror / "m" / "ep1.pt"
    (mirror / "m" / "ep1.pt").write_bytes(PAYLOAD[:1000])  # mirror copy replaced by a broken one
    with pytest.raises(errors.ChecksumMismatchError):
        hub.fetch(url, "m/ep1.pt", progress=False)


def test_atomic_replace_keeps_old_file_and_no_temp_on_error(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["f.txt"]
