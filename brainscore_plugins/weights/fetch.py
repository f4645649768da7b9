"""Checkpoint files: a local mirror, a verified cache, and resumable downloads.

Lookup order for ``<relative path>`` (``<model_id>/ep<N>.pt``, the URL's path after ``checkpoints/``):

1. ``$BRAINSCORE_PLUGINS_MIRROR/<relative path>`` (a read-only copy for offline clusters); symbolic links in the
   mirror are followed only while they stay inside it (the mirror folder itself may be a link);
2. ``<cache>/<relative path>``, the cache being ``$BRAINSCORE_PLUGINS_CACHE`` or
   ``<torch.hub.get_dir()>/brainscore_plugins`` (i.e. ``$TORCH_HOME/hub`` or ``$XDG_CACHE_HOME/torch/hub``);
3. a download of the URL into ``<file>.partial`` (TLS verified). An interrupted one is resumed with ``Range`` and
   ``If-Range`` (the ETag, else Last-Modified, of its first attempt, kept in ``<file>.partial.json``) when the
   answer's ``Content-Range`` continues it and the answer's own ETag or Last-Modified is that validator (a server may
   ignore ``If-Range``); otherwise it starts over. A body shorter than its ``Content-Length``
   stays partial; an HTML page (``Content-Type: text/html``) is refused. An exclusive lock (``filelock``) on
   ``<file>.lock`` (left in the cache) is held meanwhile: a concurrent download of the same file says that it
   waits, then finds the finished one, or gives up after ``$BRAINSCORE_PLUGINS_LOCK_TIMEOUT`` seconds.

Trust: a file is checked against its published sha256 (the catalog's; for a Hugging Face LFS file, the one the Hub
reports, or offline the one huggingface_hub's cache stored it under) or the one recorded in
``<cache>/<relative path>.sha256``. A file with neither is trusted only once it loaded as a checkpoint of its
architecture and, when it is a zip archive (``torch.save``'s format), every member's CRC verified
(:func:`trust_after_load`): then its sha256 is recorded and a download gets its final name (at once when it matched
a known hash). A download's first load holds its lock, so a concurrent fetch of the same file waits and then uses
the trusted file. One that does not load is removed from the cache (never from the mirror or
huggingface_hub's cache: the error says what to do).

Cache files (the file, its ``.partial``, ``.partial.json``, ``.lock`` and ``.sha256``) are opened without following
symbolic links (a planted link is refused, naming it) and created with the user's umask.

Hugging Face Hub files (:func:`fetch_hf`, humanlike-vits): ``$BRAINSCORE_PLUGINS_MIRROR/<path in the repo>``, else
``huggingface_hub.hf_hub_download`` with its own cache (``$HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` = cache only);
the sha256 is recorded in ``<cache>/huggingface/<repo id>/<path in the repo>.sha256``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import http.client
import json
import logging
import os
import re
import secrets
import socket
import stat
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Literal

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from .. import cache_files
from ..errors import CheckpointInvalidError, ChecksumMismatchError, WeightsUnavailableError
from ..settings import LOCK_TIMEOUT, MIRROR, cache_dir, hf_cache, hf_offline, lock_timeout, mirror

CHUNK = 1 << 20
_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Weights:
    """A local weights file: ``path`` (what to load), ``final`` (where it stays once trusted: ``path``, except for a
    download that awaits its first load), its ``sha256``, the ``record`` of that hash, whether a published or recorded
    hash ``vouched`` for it, ``where`` it lies, and its file ``identity`` when hashed."""

    path: Path
    final: Path
    sha256: str
    record: Path
    vouched: bool
    where: Literal["cache", "mirror", "huggingface"]
    identity: tuple[int, int, int, int]


# cache files never through a planted link (cache_files), refused as weights that are unavailable
_open = functools.partial(cache_files.open_file, error=WeightsUnavailableError)
_lstat = functools.partial(cache_files.lstat, error=WeightsUnavailableError)


def _unlinked(root: Path, relative_path: str) -> Path:
    """``root / relative_path``, once no folder between the two is a symbolic link (the cache folder itself may be
    one): a planted link would send every file of a model elsewhere.

    Raises:
        WeightsUnavailableError: such a link, named.
    """
    path = root / relative_path
    for folder in reversed(path.relative_to(root).parents[:-1]):
        cache_files.unlinked(root / folder, WeightsUnavailableError)
    return path


def _identity(status: os.stat_result | None) -> tuple[int, int, int, int] | None:
    return status and (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


SIDECAR_BYTES = 1 << 16  # a recorded hash or a download's state is under a kilobyte


def _read(path: Path) -> str | None:
    """The text of a small cache file (``None``: absent).

    Raises:
        WeightsUnavailableError: it is not a regular file, is too large, or not text (named, with the fix).
    """
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, whose error names the descriptor, not the path
        os.close(fd)
        data = None
    else:
        with os.fdopen(fd, "rb") as f:
            data = f.read(SIDECAR_BYTES + 1)
    if data is None or len(data) > SIDECAR_BYTES:
        what = "not a regular file" if data is None else f"larger than {SIDECAR_BYTES:,} bytes"
        raise WeightsUnavailableError(f"the cache file {path} is {what}, which this cache never writes; remove it "
                                      f"(it is rewritten when needed)")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise WeightsUnavailableError(f"the cache file {path} is not text, which this cache never writes; remove it "
                                      f"(it is rewritten when needed)") from None


def _write(path: Path, text: str) -> None:
    """Replace a small cache file atomically (a fresh temporary file, then a rename, which never follows a link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with os.fdopen(_open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as f:
            f.write(text.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _hash(path: Path, follow_links: bool) -> tuple[str, tuple[int, int, int, int]]:
    """sha256 and identity of ``path`` (a cache file: never through a link)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | cache_files.BINARY) if follow_links else _open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
        return digest.hexdigest(), _identity(os.fstat(f.fileno()))


def sha256_of(path: Path) -> str:
    """The sha256 of ``path`` (links followed)."""
    return _hash(Path(path), follow_links=True)[0]


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def _state_file(target: Path) -> Path:
    return target.with_name(target.name + ".partial.json")


def _remove(*paths: Path) -> None:
    for path in paths:
        if _lstat(path):
            path.unlink()


def _checked(path: Path, final: Path, record: Path, published: str | None,
             where: Literal["cache", "mirror", "huggingface"]) -> Weights:
    """``path`` hashed and compared with the published, else the recorded, sha256 (if any).

    Raises:
        ChecksumMismatchError: the file differs from that hash.
    """
    recorded = (_read(record) or "").strip() or None
    expected = published or recorded
    actual, identity = _hash(path, follow_links=where != "cache")
    if expected is not None and actual != expected:
        source = "published" if published else f"recorded in {record} when the file was first loaded"
        replaced = "" if published else f" If the file was legitimately replaced, delete {record}."
        remedy = {"mirror": "Replace the mirrored file with the published one.",
                  "huggingface": "Delete it from the Hugging Face cache so that it is downloaded again.",
                  "cache": "Delete it so that it is downloaded again." if path == final else
                  "The download was removed; run again to download it again."}[where]
        raise ChecksumMismatchError(f"{path} is corrupted: its sha256 is {actual}, expected {expected} ({source}). "
                                    f"{remedy}{replaced}")
    return Weights(path, final, actual, record, expected is not None, where, identity)


def trust_after_load(weights: Weights, identifier: str, load: Callable[[Path], object]) -> None:
    """``load(weights.path)``, which raises :class:`CheckpointInvalidError` for a file that is not a checkpoint of
    ``identifier``'s architecture; then, for a file no hash vouched for, check its zip CRCs and trust it: record its
    sha256, and give a download its final name. A download is loaded under its lock; one that another process
    trusted meanwhile is loaded from its final name.

    Raises:
        CheckpointInvalidError: ``load``'s error, or a damaged archive; for a file no hash vouched for, it says where
            the file is and what to do, and a copy in the cache has been removed.
    """
    if weights.vouched:
        load(weights.path)
        return
    if weights.path == weights.final:
        _load_unvouched(weights, identifier, load, locked=False)
        _write(weights.record, weights.sha256 + "\n")
        return
    with _locked(weights.final):
        if _lstat(weights.final):  # another process loaded, checked and recorded it while this one waited
            load(_checked(weights.final, weights.final, weights.record, None, "cache").path)
            return
        _load_unvouched(weights, identifier, load, locked=True)
        if _identity(_lstat(weights.path)) == weights.identity:  # not restarted by another process meanwhile
            _write(weights.record, weights.sha256 + "\n")
            os.replace(weights.path, weights.final)
            _remove(_state_file(weights.final))


def _load_unvouched(weights: Weights, identifier: str, load: Callable[[Path], object], locked: bool) -> None:
    """``load`` a file no hash vouched for, then verify its zip CRCs; a failure removes a cache copy and says so
    (``locked``: the caller holds the file's lock)."""
    try:
        load(weights.path)
        verify_archive(weights.path)
    except CheckpointInvalidError as error:
        raise _rejected(weights, identifier, error, locked) from error


def verify_archive(path: Path) -> None:
    """Check every member's CRC when ``path`` is a zip archive (a loader may read a damaged one without noticing).

    Raises:
        CheckpointInvalidError: a member fails its CRC check, or the archive cannot be read.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CheckpointInvalidError(f"{path} is a damaged archive ({error})") from error
    if damaged is not None:
        raise CheckpointInvalidError(f"{path} is a damaged archive: its member {damaged} fails its CRC check (a "
                                     f"download spliced from two versions of the file, or a disk error)")


def _rejected(weights: Weights, identifier: str, error: CheckpointInvalidError,
              locked: bool = False) -> CheckpointInvalidError:
    """The error for a file no hash vouched for that did not load; a cache copy is removed (under its lock, unless
    the caller holds it: ``locked``)."""
    what = f"not a checkpoint of {identifier} ({error})"
    if weights.where == "mirror":
        return CheckpointInvalidError(f"The mirrored file {weights.path} is {what}; replace it with the published "
                                      f"file.")
    if weights.where == "huggingface":
        return CheckpointInvalidError(f"{weights.path} in the Hugging Face cache is {what}; delete it so that it is "
                                      f"downloaded again.")
    with contextlib.nullcontext() if locked else _locked(weights.final):
        removed = _identity(_lstat(weights.path)) == weights.identity  # else another process replaced it meanwhile
        if removed:
            _remove(weights.path, *(() if weights.path == weights.final else (_state_file(weights.final),)))
    return CheckpointInvalidError(f"{weights.path} in the cache is {what}; "
                                  f"{'it was removed' if removed else 'another process has replaced it since'}, "
                                  f"run again to download it.")


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold the exclusive lock ``<target>.lock``; a wait is logged, and given up after the lock timeout."""
    lock_path = target.with_name(target.name + ".lock")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.close(_open(lock_path, os.O_RDONLY | os.O_CREAT))  # a planted link is refused here, by name
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        timeout = lock_timeout()
        _logger.warning("Waiting for %s, held by %s; giving up after %g s (%s)", lock_path, _holder(target), timeout,
                        LOCK_TIMEOUT)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise WeightsUnavailableError(
                f"Gave up after waiting {timeout:g} s for {lock_path}, held by {_holder(target)}. Run again once it "
                f"is done (stop it if it is stuck), or wait longer by setting {LOCK_TIMEOUT}.") from None
    try:
        yield
    finally:
        lock.release()


def _holder(target: Path) -> str:
    """Who holds the lock of ``target``, as its download recorded it."""
    state = _read_state(target)
    if "pid" not in state:
        return "another process"
    return f"process {state['pid']} on {state.get('host')} (downloading {state.get('url')} into {_partial(target)})"


def _read_state(target: Path) -> dict:
    """What ``<target>.partial.json`` says of the download: url, validators, total size, pid and host."""
    try:
        state = json.loads(_read(_state_file(target)) or "{}")
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _download(url: str, cached: Path, relative_path: str, record: Path, sha256: str | None,
              progress: bool) -> Weights | None:
    """Download ``url`` for ``cached`` under its lock: a file matching a known hash gets its final name, one without
    awaits :func:`trust_after_load` as ``<file>.partial``; ``None`` if another process finished it meanwhile."""
    with _locked(cached):
        if _lstat(cached):
            return None
        _download_locked(url, cached, relative_path, progress)
        partial = _partial(cached)
        try:
            weights = _checked(partial, cached, record, sha256, "cache")
        except ChecksumMismatchError:
            _remove(partial, _state_file(cached))
            raise
        if weights.vouched:
            os.replace(partial, cached)
            _remove(_state_file(cached))
            weights = dataclasses.replace(weights, path=cached)
        return weights


def _download_locked(url: str, target: Path, relative_path: str, progress: bool) -> None:
    """Complete ``<target>.partial``: resume it when its first attempt's validator and size allow, else start over."""
    partial = _partial(target)
    status = _lstat(partial)
    state = _read_state(target) if status else {}
    if state.get("url") != url:
        state = {}
    size = status.st_size if status and state else 0
    known_total = state.get("total")
    if known_total is not None and size == known_total:
        return  # complete: an earlier run was stopped before it used the file
    etag = state.get("etag")
    validator = etag if etag and not etag.startswith("W/") else state.get("last_modified")  # If-Range: strong only
    offset = size if validator and (known_total is None or size < known_total) else 0
    answer = _request(url, offset, validator, known_total, relative_path)
    if answer is not None:
        response, start, total = answer
        with response:
            _receive(response, url, target, start, total, state, progress)


def _request(url: str, offset: int, validator: str | None, total: int | None,
             relative_path: str) -> tuple[http.client.HTTPResponse, int, int | None] | None:
    """The answer to a GET of ``url`` from ``offset``: (response, start of its body in the file, file size if known),
    or ``None`` when the server says a partial file of ``offset`` bytes is complete (416)."""
    headers = {"Range": f"bytes={offset}-", "If-Range": validator} if offset else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as error:
        with error:
            if error.code != 416 or not offset:
                raise
            size = re.fullmatch(r"bytes \*/(\d+)", error.headers.get("Content-Range", "").strip())
        if size and int(size[1]) == offset and total in (None, offset):
            return None
        return _request(url, 0, None, None, relative_path)
    if response.headers.get_content_type() == "text/html":
        response.close()
        raise WeightsUnavailableError(
            f"{url} answered with an HTML page (Content-Type: text/html), not the checkpoint: the server reports an "
            f"error or wants a login; {_mirror_hint(relative_path)}.")
    if response.status != 206:  # the whole file: the first attempt, or the file changed (If-Range), or no ranges
        length = response.headers.get("Content-Length")
        return response, 0, int(length) if length is not None else None
    span = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "").strip())
    same_file = validator in (response.headers.get("ETag"), response.headers.get("Last-Modified"))  # a server may
    if offset and span and int(span[1]) == offset and total in (None, int(span[2])) and same_file:  # ignore If-Range
        return response, offset, int(span[2])
    response.close()
    if not offset:
        raise http.client.HTTPException(f"a partial answer ({span and span[0]}) to a request for the whole file")
    return _request(url, 0, None, None, relative_path)  # not the continuation of the partial file: start over


def _receive(response, url: str, target: Path, start: int, total: int | None, state: dict, progress: bool) -> None:
    """Write the body to ``<target>.partial`` (a fresh file when ``start`` is 0); check its length."""
    partial = _partial(target)
    if not start:
        _remove(partial)
        state = {"url": url, "etag": response.headers.get("ETag"),
                 "last_modified": response.headers.get("Last-Modified"), "total": total}
    _write(_state_file(target), json.dumps({**state, "total": total, "pid": os.getpid(), "host": socket.gethostname()}))
    flags = os.O_WRONLY | (os.O_APPEND if start else os.O_CREAT | os.O_EXCL)
    stopped = None
    with os.fdopen(_open(partial, flags), "wb") as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
        except (http.client.IncompleteRead, OSError) as error:
            stopped = error
    size = _lstat(partial).st_size
    if total is not None and size > total:
        _remove(partial, _state_file(target))
        raise WeightsUnavailableError(f"{url} sent {size} bytes, more than the {total} it announced; the download "
                                      f"was removed, run again.")
    if stopped is not None or (total is not None and size < total):
        raise WeightsUnavailableError(
            f"The download of {url} stopped at {size} of {total if total is not None else 'an unknown number of'} "
            f"bytes{f' ({stopped})' if stopped else ''}; run again to resume it from {partial}.")


def _mirror_hint(path: str) -> str:
    """The offline hint for a file missing at ``path`` under the mirror, ending where callers add an alternative."""
    folder = mirror()
    where = f"{MIRROR}={folder} has no {path}" if folder else f"{MIRROR} is not set"
    return f"{where}. Copy the file to <mirror>/{path} and set {MIRROR}=<mirror>"


def _mirrored(relative_path: str, record: Path, sha256: str | None) -> Weights | None:
    """The checked mirror copy ``$BRAINSCORE_PLUGINS_MIRROR/<relative_path>``, if there is one.

    Raises:
        CheckpointInvalidError: it is a symbolic link leading out of the mirror.
        ChecksumMismatchError: it differs from the published or recorded sha256.
    """
    folder = mirror()
    if not folder or not (folder / relative_path).is_file():
        return None
    mirrored = folder / relative_path
    real = mirrored.resolve()
    if not real.is_relative_to(folder.resolve()):
        raise CheckpointInvalidError(
            f"The mirrored file {mirrored} is a link to {real}, outside the mirror {folder}: links are followed only "
            f"within the mirror. Put the file itself there (or a link to a file inside the mirror).")
    return _checked(mirrored, mirrored, record, sha256, "mirror")


def fetch(url: str, relative_path: str, sha256: str | None = None, progress: bool = True) -> Weights:
    """The local file for ``url`` (mirror, cache, or a fresh download), checked against the published or recorded
    sha256; without either, pass it to :func:`trust_after_load`, which trusts it once it loads.

    Raises:
        WeightsUnavailableError: not mirrored or cached, and the download failed; or a cache file is a symbolic link.
        ChecksumMismatchError: the file differs from the published or recorded sha256.
        CheckpointInvalidError: the mirror's file is a link leading out of the mirror.
    """
    record = _unlinked(cache_dir(), f"{relative_path}.sha256")
    mirrored = _mirrored(relative_path, record, sha256)
    if mirrored:
        return mirrored
    cached = cache_dir() / relative_path
    if not _lstat(cached):
        try:
            downloaded = _download(url, cached, relative_path, record, sha256, progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise WeightsUnavailableError(
                f"Cannot download {url} ({error}); {_mirror_hint(relative_path)}, or place it at {cached}.") from error
        if downloaded:
            return downloaded
    return _checked(cached, cached, record, sha256, "cache")


def _hf_published(repo_id: str, filename: str, path: Path, offline: bool) -> str | None:
    """The sha256 of an LFS file: its ETag as the Hub reports it, else (offline, or the Hub unreachable) the name of
    the blob huggingface_hub's cache stored it under (that ETag at download time); ``None`` for other files."""
    if not offline:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        try:
            etag = get_hf_file_metadata(hf_hub_url(repo_id, filename)).etag
        except Exception as error:  # noqa: BLE001 -- the transport's error classes depend on huggingface_hub's version
            _logger.info("Could not ask the Hugging Face Hub for the sha256 of %s (%s); using its cache's", filename,
                         error)
        else:
            if etag and cache_files.SHA256.fullmatch(etag):
                return etag
    blob = Path(os.path.realpath(path))
    return blob.name if blob.parent.name == "blobs" and cache_files.SHA256.fullmatch(blob.name) else None


def fetch_hf(repo_id: str, filename: str, sha256: str | None = None, progress: bool = True,
             mirror_path: str | None = None) -> Weights:
    """The local file ``filename`` of Hugging Face model repo ``repo_id``: the mirror copy
    ``$BRAINSCORE_PLUGINS_MIRROR/<mirror_path>`` (default: ``<filename>``), else ``hf_hub_download`` (its cache;
    cache only when offline), checked as :func:`fetch` does, an LFS file against the sha256 the Hub publishes.

    Raises:
        WeightsUnavailableError: not mirrored, and neither cached nor downloadable.
        ChecksumMismatchError: the file differs from the published or recorded sha256.
        CheckpointInvalidError: the mirror's file is a link leading out of the mirror.
    """
    record = _unlinked(cache_dir(), f"huggingface/{repo_id}/{filename}.sha256")
    mirrored = _mirrored(mirror_path or filename, record, sha256)
    if mirrored:
        return mirrored
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError
    offline = hf_offline()
    try:
        path = Path(hf_hub_download(repo_id, filename, cache_dir=hf_cache(), local_files_only=offline))
    except (EntryNotFoundError, OSError, ValueError) as error:
        how = "HF_HUB_OFFLINE is set and the Hugging Face cache has no copy" if offline else \
            f"the download failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        raise WeightsUnavailableError(
            f"Cannot get {filename} of the Hugging Face repo {repo_id}: {how}; "
            f"{_mirror_hint(mirror_path or filename)}, "
            f"or download it once online (huggingface-cli download {repo_id} {filename}).") from error
    published = sha256 or _hf_published(repo_id, filename, path, offline)
    return _checked(path, path, record, published, "huggingface")
