"""Checkpoint files: a local mirror, a verified cache, and resumable downloads.

Lookup order for ``<relative path>`` (``<model_id>/ep<N>.pt``, the URL's path after ``checkpoints/``):

1. ``$BRAINSCORE_PLUGINS_MIRROR/<relative path>`` (a read-only copy for offline clusters);
2. ``<cache>/<relative path>``, the cache being ``$BRAINSCORE_PLUGINS_CACHE`` or
   ``<torch.hub.get_dir()>/brainscore_plugins`` (i.e. ``$TORCH_HOME/hub`` or ``$XDG_CACHE_HOME/torch/hub``);
3. a download of the URL into the cache, written to ``<file>.partial`` (resumed with an HTTP range request when
   a partial file is there) and renamed only once complete and verified. An exclusive lock (``filelock``) on
   ``<file>.lock`` (an empty file left in the cache) is held meanwhile: a concurrent download of the same file
   waits, then finds the finished one.

Every file's sha256 is recorded in ``<cache>/<relative path>.sha256`` the first time it is used (or taken from the
catalog when published) and verified on every later use, so a corrupted or swapped file is caught.

Hugging Face Hub files (:func:`fetch_hf`, humanlike-vits): ``$BRAINSCORE_PLUGINS_MIRROR/<path in the repo>``, else
``huggingface_hub.hf_hub_download`` with its own cache (``$HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` = cache only);
the sha256 is recorded in ``<cache>/huggingface/<repo id>/<path in the repo>.sha256`` and verified the same way.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from filelock import FileLock
from tqdm.auto import tqdm

from region_commitment import atomic

from .errors import ChecksumMismatchError, WeightsUnavailableError
from .settings import MIRROR, cache_dir, hf_cache, hf_offline, mirror

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, relative_path: str, expected: str | None) -> None:
    """Check ``path`` against the published or recorded hash; record the hash on first use."""
    record = cache_dir() / f"{relative_path}.sha256"
    recorded = record.read_text().strip() if record.exists() else None
    expected = expected or recorded
    actual = sha256_of(path)
    if expected is None:
        atomic.write_text(record, actual + "\n")
        return
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path} is corrupted: its sha256 is {actual}, expected {expected} (recorded in {record}). "
            f"Delete the file (and {record.name} if the file was legitimately replaced) so it is fetched again.")
    if recorded is None:
        atomic.write_text(record, actual + "\n")


def _download(url: str, target: Path, progress: bool) -> None:
    """Download ``url`` to ``target`` via ``target.partial``, resuming a partial file; TLS is verified. Holds an
    exclusive lock on ``target.lock`` meanwhile; returns at once if ``target`` was finished while it waited."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.with_name(target.name + ".lock"))):  # fcntl / msvcrt, released on exit
        if not target.is_file():
            _download_locked(url, target, progress)


def _download_locked(url: str, target: Path, progress: bool) -> None:
    partial = target.with_name(target.name + ".partial")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        if offset and response.status != 206:  # server ignored the range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(partial, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=target.name,
                disable=not progress) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
    size = partial.stat().st_size
    if total is not None and size != total:
        raise WeightsUnavailableError(
            f"Download of {url} stopped at {size} of {total} bytes; run again to resume from {partial}.")
    os.replace(partial, target)


def _mirror_hint(path: str) -> str:
    """The offline hint for a file missing at ``path`` under the mirror, ending where callers add an alternative."""
    folder = mirror()
    where = f"{MIRROR}={folder} has no {path}" if folder else f"{MIRROR} is not set"
    return f"{where}. Copy the file to <mirror>/{path} and set {MIRROR}=<mirror>"


def _mirrored(relative_path: str, record: str, sha256: str | None) -> Path | None:
    """The verified mirror copy ``$BRAINSCORE_PLUGINS_MIRROR/<relative_path>``, if there is one."""
    folder = mirror()
    if folder:
        mirrored = folder / relative_path
        if mirrored.is_file():
            _verify(mirrored, record, sha256)
            return mirrored
    return None


def fetch(url: str, relative_path: str, sha256: str | None = None, progress: bool = True) -> Path:
    """Local path of the verified file for ``url`` (mirror, cache, or a fresh download).

    Raises:
        WeightsUnavailableError: not mirrored or cached, and the download failed.
        ChecksumMismatchError: the file differs from the published or recorded sha256.
    """
    mirrored = _mirrored(relative_path, relative_path, sha256)
    if mirrored:
        return mirrored
    cached = cache_dir() / relative_path
    if not cached.is_file():
        try:
            _download(url, cached, progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise WeightsUnavailableError(
                f"Cannot download {url} ({error}); {_mirror_hint(relative_path)}, or place it at {cached}.") from error
    _verify(cached, relative_path, sha256)
    return cached


def fetch_hf(repo_id: str, filename: str, sha256: str | None = None, progress: bool = True) -> Path:
    """Local path of the verified file ``filename`` of Hugging Face model repo ``repo_id``: the mirror copy
    ``$BRAINSCORE_PLUGINS_MIRROR/<filename>``, else ``hf_hub_download`` (its cache; cache only when offline).

    Raises:
        WeightsUnavailableError: not mirrored, and neither cached nor downloadable.
        ChecksumMismatchError: the file differs from the published or recorded sha256.
    """
    record = f"huggingface/{repo_id}/{filename}"
    mirrored = _mirrored(filename, record, sha256)
    if mirrored:
        return mirrored
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError
    offline = hf_offline()
    try:
        path = Path(hf_hub_download(repo_id, filename, cache_dir=hf_cache(),
                                    local_files_only=offline))
    except (EntryNotFoundError, OSError, ValueError) as error:
        how = "HF_HUB_OFFLINE is set and the Hugging Face cache has no copy" if offline else \
            f"the download failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        raise WeightsUnavailableError(
            f"Cannot get {filename} of the Hugging Face repo {repo_id}: {how}; {_mirror_hint(filename)}, "
            f"or download it once online (huggingface-cli download {repo_id} {filename}).") from error
    _verify(path, record, sha256)
    return path
