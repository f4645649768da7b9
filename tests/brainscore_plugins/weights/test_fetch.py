"""Downloads, cache, mirror and hash checks, against a local HTTP server on the loopback interface. The payload is
not a checkpoint: ``_load`` stands in for the strict load that :func:`fetch.use` runs before trusting a file."""
import concurrent.futures
import fcntl
import functools
import hashlib
import http.server
import json
import logging
import os
import threading
import types
from pathlib import Path

import pytest

from brainscore_plugins import errors, settings
from brainscore_plugins.weights import fetch
from region_commitment import atomic

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
CHANGED = bytes(reversed(range(256))) * 4096
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files with an ETag, Last-Modified and ranges (``If-Range`` honoured unless ``ignore_if_range``; 416 past
    the end). ``truncate_at`` cuts the body short; ``no_length`` sends no Content-Length (the body ends when the
    connection closes); ``content_type`` is the body's; ``gate`` (an event) holds each response until it is set,
    after ``gate_after`` bytes of body (``None``: before the answer); ``gets`` and ``requests`` record the requests."""
    truncate_at = None
    no_length = False
    ignore_if_range = False
    content_type = "application/octet-stream"
    gate = None
    gate_after = None
    gets = 0
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        cls = type(self)
        cls.gets += 1
        cls.requests.append({k: self.headers[k] for k in ("Range", "If-Range") if k in self.headers})
        if cls.gate is not None and cls.gate_after is None:
            cls.gate.wait(timeout=10)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        etag = f'"{hashlib.sha1(data).hexdigest()}"'
        start = 0
        if "Range" in self.headers and (cls.ignore_if_range or self.headers.get("If-Range", etag) == etag):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if not cls.no_length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", cls.content_type)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        self.end_headers()
        body = body if cls.truncate_at is None else body[:cls.truncate_at]
        if cls.gate is not None and cls.gate_after is not None:
            self.wfile.write(body[:cls.gate_after])
            self.wfile.flush()
            cls.gate.wait(timeout=10)
            body = body[cls.gate_after:]
        self.wfile.write(body)


@pytest.fixture
def served(tmp_path):
    """The served file (``<served>/checkpoints/m/ep1.pt``), to change it between requests."""
    path = tmp_path / "served" / "checkpoints" / "m" / "ep1.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    return path


@pytest.fixture
def server(tmp_path, served):
    for name, value in (("truncate_at", None), ("no_length", False), ("ignore_if_range", False), ("gate", None),
                        ("content_type", "application/octet-stream"), ("gate_after", None), ("gets", 0),
                        ("requests", [])):
        setattr(_Handler, name, value)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(tmp_path / "served")))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/checkpoints/m/ep1.pt"
    if _Handler.gate is not None:
        _Handler.gate.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(settings.MIRROR, raising=False)
    monkeypatch.delenv(settings.LOCK_TIMEOUT, raising=False)
    return tmp_path / "cache"


def _load(path):
    """The stand-in for a strict checkpoint load: only the genuine payload is 'a checkpoint of m'."""
    if Path(path).read_bytes() != PAYLOAD:
        raise errors.CheckpointInvalidError(f"{path} holds no weights of m")


def _fetch_and_use(url):
    weights = fetch.fetch(url, "m/ep1.pt", progress=False)
    fetch.trust_after_load(weights, "m", _load)
    return weights


def test_download_is_trusted_and_recorded_only_once_it_loads(server, isolated_cache):
    final, record = isolated_cache / "m" / "ep1.pt", isolated_cache / "m" / "ep1.pt.sha256"
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)
    assert not weights.vouched and weights.final == final and weights.path == isolated_cache / "m" / "ep1.pt.partial"
    assert not final.exists() and not record.exists()  # not trusted before it loaded
    fetch.trust_after_load(weights, "m", _load)
    assert final.read_bytes() == PAYLOAD and record.read_text().strip() == SHA
    assert sorted(p.name for p in final.parent.iterdir()) == ["ep1.pt", "ep1.pt.lock", "ep1.pt.sha256"]
    again = fetch.fetch(server, "m/ep1.pt", progress=False)
    assert again.vouched and again.path == final and _Handler.gets == 1


def test_published_hash_is_checked_before_the_final_name(server, isolated_cache):
    with pytest.raises(errors.ChecksumMismatchError, match="sha256.*removed"):
        fetch.fetch(server, "m/ep1.pt", sha256="0" * 64, progress=False)
    assert [p.name for p in (isolated_cache / "m").iterdir()] == ["ep1.pt.lock"]
    weights = fetch.fetch(server, "m/ep1.pt", sha256=SHA, progress=False)
    assert weights.vouched and weights.path == weights.final and weights.final.read_bytes() == PAYLOAD


def test_corrupted_cache_file_is_detected_on_later_load(server):
    path = _fetch_and_use(server).final
    path.write_bytes(PAYLOAD[:-1] + b"\x00")
    with pytest.raises(errors.ChecksumMismatchError, match="corrupted"):
        fetch.fetch(server, "m/ep1.pt", progress=False)


def test_a_cached_bad_file_is_removed_and_the_next_call_downloads_the_genuine_one(server, isolated_cache):
    bad = isolated_cache / "m" / "ep1.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"")
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)
    with pytest.raises(errors.CheckpointInvalidError, match="in the cache is not a checkpoint of m.*it was removed"):
        fetch.trust_after_load(weights, "m", _load)
    assert not bad.exists() and not (isolated_cache / "m" / "ep1.pt.sha256").exists()
    assert _fetch_and_use(server).final.read_bytes() == PAYLOAD


def test_truncated_download_stays_partial_and_resumes_with_if_range(server, isolated_cache):
    _Handler.truncate_at = 300_000
    with pytest.raises(errors.WeightsUnavailableError, match="stopped at 300000 of 1048576 bytes"):
        fetch.fetch(server, "m/ep1.pt", progress=False)
    assert not (isolated_cache / "m" / "ep1.pt").exists()
    partial = isolated_cache / "m" / "ep1.pt.partial"
    assert partial.stat().st_size == 300_000
    state = json.loads((isolated_cache / "m" / "ep1.pt.partial.json").read_text())
    assert state["total"] == len(PAYLOAD) and state["etag"]
    _Handler.truncate_at = None
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)
    assert _Handler.requests[-1] == {"Range": "bytes=300000-", "If-Range": state["etag"]}  # resumed, not restarted
    fetch.trust_after_load(weights, "m", _load)
    assert weights.final.read_bytes() == PAYLOAD and not partial.exists()


@pytest.mark.parametrize("ignore_if_range, changed", [(False, CHANGED), (True, CHANGED + b"new")],
                         ids=["if-range-honoured", "content-range-checked"])
def test_a_file_changed_between_attempts_is_downloaded_again_not_spliced(server, served, ignore_if_range, changed):
    """A new version (new ETag) of the same size comes whole (200) when the server honours If-Range; a server that
    ignores it answers 206, whose Content-Range shows another total: started over."""
    _Handler.truncate_at = 300_000
    with pytest.raises(errors.WeightsUnavailableError, match="stopped"):
        fetch.fetch(server, "m/ep1.pt", progress=False)
    served.write_bytes(changed)
    _Handler.truncate_at, _Handler.ignore_if_range = None, ignore_if_range
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)
    assert weights.path.read_bytes() == changed
    assert "Range" in _Handler.requests[1] and ("Range" in _Handler.requests[-1]) != ignore_if_range


def test_no_content_length_and_cut_never_reaches_the_final_name(server, isolated_cache):
    _Handler.no_length, _Handler.truncate_at = True, 300_000
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)  # ended: complete or not, nobody can tell
    assert not weights.vouched and not weights.final.exists()
    with pytest.raises(errors.CheckpointInvalidError, match=r"ep1.pt.partial in the cache .* it was removed"):
        fetch.trust_after_load(weights, "m", _load)
    assert sorted(p.name for p in weights.final.parent.iterdir()) == ["ep1.pt.lock"]
    _Handler.truncate_at = None
    assert _fetch_and_use(server).final.read_bytes() == PAYLOAD


def test_a_complete_partial_file_is_finished_after_416(server, isolated_cache):
    """A download without a length that ended exactly at the end (or was stopped there) is not asked for again."""
    _Handler.no_length = True
    fetch.fetch(server, "m/ep1.pt", progress=False)  # stays ep1.pt.partial, not yet loaded
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)
    assert _Handler.requests[-1]["Range"] == f"bytes={len(PAYLOAD)}-" and _Handler.gets == 2  # answered 416
    fetch.trust_after_load(weights, "m", _load)
    assert weights.final.read_bytes() == PAYLOAD


def test_an_html_page_is_refused(server, isolated_cache):
    _Handler.content_type = "text/html; charset=utf-8"
    with pytest.raises(errors.WeightsUnavailableError, match="HTML page.*not the checkpoint"):
        fetch.fetch(server, "m/ep1.pt", progress=False)
    assert [p.name for p in (isolated_cache / "m").iterdir()] == ["ep1.pt.lock"]


def test_concurrent_downloads_fetch_once(server, isolated_cache, monkeypatch):
    """Two downloads of one file: the second waits on the lock, then finds the finished file (one request)."""
    record = isolated_cache / "m" / "ep1.pt.sha256"
    record.parent.mkdir(parents=True)
    record.write_text(SHA + "\n")  # known hash: checked, not written, by both
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
        futures = [pool.submit(fetch.fetch, server, "m/ep1.pt", progress=False) for _ in range(2)]
        fetched = [future.result(timeout=30) for future in futures]
    assert second_waits.is_set() and _Handler.gets == 1
    assert [w.path for w in fetched] == [isolated_cache / "m" / "ep1.pt"] * 2 and all(w.vouched for w in fetched)
    assert not list(isolated_cache.rglob("*.partial"))


def test_a_stalled_lock_is_reported_and_given_up(server, isolated_cache, monkeypatch, caplog):
    monkeypatch.setenv(settings.LOCK_TIMEOUT, "0.5")
    _Handler.gate, _Handler.gate_after = threading.Event(), 1000  # the first download stalls mid-body
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(fetch.fetch, server, "m/ep1.pt", progress=False)
        state = isolated_cache / "m" / "ep1.pt.partial.json"
        for _ in range(100):
            if state.exists():
                break
            threading.Event().wait(0.05)
        with caplog.at_level(logging.WARNING, logger=fetch.__name__), \
                pytest.raises(errors.WeightsUnavailableError) as error:
            fetch.fetch(server, "m/ep1.pt", progress=False)
        _Handler.gate.set()
        first.result(timeout=30)
    message = str(error.value)
    assert "Gave up after waiting 0.5 s" in message and f"process {os.getpid()}" in message
    assert str(isolated_cache / "m" / "ep1.pt.lock") in message and settings.LOCK_TIMEOUT in message
    assert "Waiting for" in caplog.text and f"process {os.getpid()}" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["", ".partial", ".partial.json", ".lock", ".sha256"])
def test_a_planted_link_in_the_cache_is_refused(server, isolated_cache, tmp_path, suffix):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = isolated_cache / "m" / f"ep1.pt{suffix}"
    link.parent.mkdir(parents=True)
    if suffix == ".partial.json":  # read when a partial download is there
        (isolated_cache / "m" / "ep1.pt.partial").write_bytes(PAYLOAD[:10])
    link.symlink_to(victim)
    with pytest.raises(errors.WeightsUnavailableError, match="is a symbolic link .*refusing to follow it") as error:
        _fetch_and_use(server)
    assert str(link) in str(error.value) and victim.read_bytes() == b"precious" and link.is_symlink()


def test_cache_files_get_the_umask_s_modes(server, isolated_cache):
    previous = os.umask(0o007)
    try:
        weights = _fetch_and_use(server)
    finally:
        os.umask(previous)
    for name in ("ep1.pt", "ep1.pt.lock", "ep1.pt.sha256"):
        assert (weights.final.parent / name).stat().st_mode & 0o777 == 0o660, name


def test_offline_without_mirror_names_url_and_variable(tmp_path):
    url = "http://127.0.0.1:9/checkpoints/m/ep1.pt"  # discard port: connection refused
    with pytest.raises(errors.WeightsUnavailableError) as error:
        fetch.fetch(url, "m/ep1.pt", progress=False)
    assert url in str(error.value) and settings.MIRROR in str(error.value)
    assert not list((tmp_path / "cache").rglob("ep1.pt"))


def test_mirror_is_used_and_verified(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "m").mkdir(parents=True)
    (mirror / "m" / "ep1.pt").write_bytes(PAYLOAD)
    monkeypatch.setenv(settings.MIRROR, str(mirror))
    url = "http://127.0.0.1:9/checkpoints/m/ep1.pt"
    weights = fetch.fetch(url, "m/ep1.pt", progress=False)
    assert weights.path == mirror / "m" / "ep1.pt" and not weights.vouched
    fetch.trust_after_load(weights, "m", _load)
    (mirror / "m" / "ep1.pt").write_bytes(PAYLOAD[:1000])  # mirror copy replaced by a broken one
    with pytest.raises(errors.ChecksumMismatchError, match="Replace the mirrored file"):
        fetch.fetch(url, "m/ep1.pt", progress=False)


def test_a_bad_mirror_file_is_neither_recorded_nor_removed(tmp_path, monkeypatch, isolated_cache):
    mirror = tmp_path / "mirror"
    (mirror / "m").mkdir(parents=True)
    (mirror / "m" / "ep1.pt").write_bytes(PAYLOAD[:1000])
    monkeypatch.setenv(settings.MIRROR, str(mirror))
    url = "http://127.0.0.1:9/checkpoints/m/ep1.pt"
    with pytest.raises(errors.CheckpointInvalidError, match="The mirrored file .* is not a checkpoint of m.*replace"):
        fetch.trust_after_load(fetch.fetch(url, "m/ep1.pt", progress=False), "m", _load)
    assert (mirror / "m" / "ep1.pt").exists() and not (isolated_cache / "m" / "ep1.pt.sha256").exists()
    (mirror / "m" / "ep1.pt").write_bytes(PAYLOAD)
    fetch.trust_after_load(fetch.fetch(url, "m/ep1.pt", progress=False), "m", _load)
    assert (isolated_cache / "m" / "ep1.pt.sha256").read_text().strip() == SHA


def test_mirror_links_are_followed_only_inside_the_mirror(tmp_path, monkeypatch):
    mirror, outside = tmp_path / "mirror", tmp_path / "outside.pt"
    (mirror / "m").mkdir(parents=True)
    (mirror / "store").mkdir()
    (mirror / "store" / "ep1.pt").write_bytes(PAYLOAD)
    outside.write_bytes(PAYLOAD)
    monkeypatch.setenv(settings.MIRROR, str(mirror))
    url = "http://127.0.0.1:9/checkpoints/m/ep1.pt"
    (mirror / "m" / "ep1.pt").symlink_to(outside)
    with pytest.raises(errors.CheckpointInvalidError, match="outside the mirror"):
        fetch.fetch(url, "m/ep1.pt", progress=False)
    (mirror / "m" / "ep1.pt").unlink()
    (mirror / "m" / "ep1.pt").symlink_to(mirror / "store" / "ep1.pt")
    assert fetch.fetch(url, "m/ep1.pt", progress=False).path == mirror / "m" / "ep1.pt"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A huggingface_hub cache holding ``m/ep1.pt`` of repo ``o/r`` as a link to ``blobs/<sha256 of PAYLOAD>`` (an LFS
    file's blob is named by the sha256 the Hub reported) whose content is ``CHANGED``."""
    repo = tmp_path / "hf" / "models--o--r"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    (repo / "blobs" / SHA).write_bytes(CHANGED)
    pointer = repo / "snapshots" / commit / "m" / "ep1.pt"
    pointer.parent.mkdir(parents=True)
    pointer.symlink_to(repo / "blobs" / SHA)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return repo / "blobs" / SHA


def test_hugging_face_lfs_file_is_checked_against_its_blob_name_offline(hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(errors.ChecksumMismatchError, match=f"expected {SHA} .published"):
        fetch.fetch_hf("o/r", "m/ep1.pt", progress=False)
    hf_cache.write_bytes(PAYLOAD)
    assert fetch.fetch_hf("o/r", "m/ep1.pt", progress=False).vouched


def test_hugging_face_lfs_file_is_checked_against_the_hub_s_etag_online(hf_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hf_cache.write_bytes(PAYLOAD)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: str(hf_cache))
    published = hashlib.sha256(CHANGED).hexdigest()
    asked = []

    def metadata(url, **kwargs):
        asked.append(url)
        return types.SimpleNamespace(etag=published)

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    with pytest.raises(errors.ChecksumMismatchError, match=f"expected {published} .published"):
        fetch.fetch_hf("o/r", "m/ep1.pt", progress=False)
    assert asked and asked[0].endswith("/o/r/resolve/main/m/ep1.pt")


def test_atomic_replace_keeps_old_file_and_no_temp_on_error(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_a_resumed_answer_with_another_validator_is_not_spliced(server, served, isolated_cache):
    """A server that ignores If-Range answers 206 with a Content-Range that continues the partial file, but the file
    changed (same size, another ETag): the client starts over rather than splice the two versions."""
    _Handler.truncate_at = 300_000
    with pytest.raises(errors.WeightsUnavailableError, match="stopped"):
        fetch.fetch(server, "m/ep1.pt", progress=False)
    served.write_bytes(CHANGED)  # same size
    _Handler.truncate_at, _Handler.ignore_if_range = None, True
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)
    assert weights.path.read_bytes() == CHANGED  # not PAYLOAD[:300000] + CHANGED[300000:]
    assert _Handler.requests[1] == {"Range": "bytes=300000-", "If-Range": _Handler.requests[1]["If-Range"]}
    assert _Handler.requests[2] == {}  # the 206 was refused: the whole file again


def _damaged_checkpoint(path: Path) -> bytes:
    """A ``torch.save`` zip whose tensor bytes were changed after writing: it loads, but a CRC fails."""
    import torch
    torch.save({"weight": torch.arange(4096, dtype=torch.float32)}, path)
    data = bytearray(path.read_bytes())
    at = data.index(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[4000:4016])
    data[at] ^= 0xFF
    return bytes(data)


def test_a_damaged_archive_is_never_recorded_even_if_it_loads(server, served, isolated_cache, tmp_path):
    import torch
    served.write_bytes(_damaged_checkpoint(tmp_path / "made.pt"))
    weights = fetch.fetch(server, "m/ep1.pt", progress=False)
    torch.load(weights.path, weights_only=True)  # the loader does not notice
    with pytest.raises(errors.CheckpointInvalidError, match=r"damaged archive: its member .* fails its CRC check"):
        fetch.trust_after_load(weights, "m", lambda path: torch.load(path, weights_only=True))
    assert sorted(p.name for p in (isolated_cache / "m").iterdir()) == ["ep1.pt.lock"]  # removed, nothing recorded
    fetch.verify_archive(tmp_path / "made.pt")  # the undamaged archive passes


CONCURRENT_CHILD = """
import sys, time
from pathlib import Path
from brainscore_plugins.weights import fetch
expected = bytes(range(256)) * 4096

def load(path):
    time.sleep(1.0)  # a slow strict load: the other process waits on the lock meanwhile
    assert Path(path).read_bytes() == expected

weights = fetch.fetch(sys.argv[1], "m/ep1.pt", progress=False)
fetch.trust_after_load(weights, "m", load)
print(weights.final.read_bytes() == expected)
"""


def test_two_processes_fetching_one_file_wait_and_share_it(server, isolated_cache, repo):
    """No published or recorded hash: the first process downloads and loads under the lock; the second waits, then
    uses the file the first trusted (one request); both succeed."""
    import subprocess
    import sys
    import time
    _Handler.gate, _Handler.gate_after = threading.Event(), 100_000  # the body stalls until both have started
    env = {**os.environ, settings.CACHE: str(isolated_cache), settings.LOCK_TIMEOUT: "60"}
    children = [subprocess.Popen([sys.executable, "-c", CONCURRENT_CHILD, server], env=env, cwd=repo,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(3)
    _Handler.gate.set()
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err[-1500:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["True", "True"] and _Handler.gets == 1
    assert (isolated_cache / "m" / "ep1.pt.sha256").read_text().strip() == SHA
    assert not list(isolated_cache.rglob("*.partial"))


def test_a_linked_model_folder_in_the_cache_is_refused(server, isolated_cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    isolated_cache.mkdir()
    (isolated_cache / "m").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(errors.WeightsUnavailableError, match="is a symbolic link .*cache file or folder never is") as e:
        _fetch_and_use(server)
    assert str(isolated_cache / "m") in str(e.value) and list(elsewhere.iterdir()) == [] and _Handler.gets == 0


def test_a_linked_cache_root_is_followed(server, tmp_path, monkeypatch):
    real = tmp_path / "real-cache"
    real.mkdir()
    (tmp_path / "cache-link").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache-link"))
    assert _fetch_and_use(server).final.read_bytes() == PAYLOAD and (real / "m" / "ep1.pt").is_file()


@pytest.mark.parametrize("sidecar, make", [(".sha256", lambda p: p.mkdir()),
                                           (".sha256", lambda p: p.write_bytes(b"0" * (fetch.SIDECAR_BYTES + 1))),
                                           (".sha256", lambda p: p.write_bytes(b"\xff\xfe")),
                                           (".partial.json", lambda p: p.mkdir())])
def test_a_sidecar_that_is_not_a_small_text_file_is_named(server, isolated_cache, sidecar, make):
    path = isolated_cache / "m" / f"ep1.pt{sidecar}"
    path.parent.mkdir(parents=True)
    if sidecar == ".partial.json":
        (isolated_cache / "m" / "ep1.pt.partial").write_bytes(PAYLOAD[:10])
    make(path)
    with pytest.raises(errors.WeightsUnavailableError, match=rf"the cache file {path} is .*remove it"):
        _fetch_and_use(server)
