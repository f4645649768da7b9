"""Preprocessed images, computed once per stimulus set and preprocessing configuration, shared by every model.

The pixels a network gets depend on the image files and the preprocessing configuration, not on the checkpoint: a
sweep over 100 checkpoints of one architecture would decode, resize and normalise every benchmark image 100 times.
:class:`PixelCache` keeps them as one ``.npy`` array per (files, configuration), memory-mapped when read:

* **Key**: the sha256 of each file's bytes (:func:`region_commitment.digests.files`, in order), the configuration
  (the preprocessing function's qualified name and keyword arguments) and the versions of the libraries that compute
  the pixels (numpy, Pillow, albumentations, OpenCV, torchvision): a file rewritten in place, another pipeline or
  another library version is another entry. The files' digest is remembered under their status (path, size,
  inode, modification and change times, in ``index/``), so a run on unchanged files stats them instead of reading
  them; a file rewritten in place gets a new change time, and is read again.
* **Written atomically** (a temporary file, filled as the batches are computed, then ``os.replace``), so concurrent
  processes (a sweep's model processes, Ray tasks on one node) never read half of an entry; two that compute one at
  the same time write the same array, and the last move wins.
* **Bounded and evictable**: after a write, the least recently used entries are removed until the folder holds at
  most ``$BRAINSCORE_PLUGINS_PIXEL_CACHE_GB`` (0 turns the cache off); entries being written count, and stay.
* **Allocated before written** (:mod:`.npy_memmap`): a disk without room for an entry is an ``OSError`` at its first
  batch (the run then goes on without the cache), never a SIGBUS while the memory map is written.
* **Never followed elsewhere**: an entry or the folder that is a symbolic link is refused
  (:class:`~.errors.PlantedCacheFileError`); an entry that is not a complete float array of the run's images
  (damaged, truncated, another shape) is removed and computed again.

The arrays are those the preprocessing function returned, so activations computed from them are bit-identical.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import stat
import time
from pathlib import Path

import numpy as np

from . import cache_files, npy_memmap, settings

STALE_SECONDS = 24 * 3600  # an entry being written that has not changed for a day was left by a killed process
_LIBRARIES = ("numpy", "Pillow", "albumentations", "opencv-python-headless", "opencv-python", "torchvision")


@functools.lru_cache(maxsize=None)
def _library_versions() -> tuple[str, ...]:
    return tuple(f"{name}={settings.installed_version(name)}" for name in _LIBRARIES)


def configuration(preprocess) -> str | None:
    """A stable description of ``preprocess`` (a ``functools.partial`` of a module-level function), or ``None`` when
    it has none (a lambda or a closure: its pixels are not cached)."""
    if not isinstance(preprocess, functools.partial) or preprocess.args:
        return None
    function = preprocess.func
    if "<" in getattr(function, "__qualname__", "<"):  # a lambda or a local function
        return None
    keywords = {k: v for k, v in preprocess.keywords.items() if isinstance(v, (str, int, float, bool, tuple))}
    if len(keywords) != len(preprocess.keywords):
        return None
    return json.dumps([f"{function.__module__}.{function.__qualname__}", sorted(keywords.items()),
                       _library_versions()])


class PixelCache:
    """The preprocessed pixels of image files, in ``folder`` (default ``<weights cache>/pixels``), at most
    ``max_bytes`` (default ``$BRAINSCORE_PLUGINS_PIXEL_CACHE_GB``)."""

    def __init__(self, folder: Path | None = None, max_bytes: int | None = None):
        self.folder = Path(folder) if folder is not None else settings.cache_dir() / "pixels"
        self.max_bytes = settings.pixel_cache_bytes() if max_bytes is None else max_bytes

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def key(self, paths: list[str], preprocess) -> str | None:
        """The entry's name for ``paths`` preprocessed by ``preprocess``; ``None`` when that cannot be cached."""
        described = configuration(preprocess)
        if described is None:
            return None
        hasher = hashlib.sha256(described.encode())
        hasher.update(self._files_digest(paths).encode())
        return hasher.hexdigest()

    def _files_digest(self, paths: list[str]) -> str:
        """:func:`region_commitment.digests.files` of ``paths``, remembered under the files' status."""
        from region_commitment import atomic, digests
        status = hashlib.sha256()
        for path in paths:
            s = os.stat(path)
            status.update(f"{os.path.abspath(path)}\0{s.st_size}:{s.st_ino}:{s.st_mtime_ns}:{s.st_ctime_ns}\0".encode())
        index = cache_files.unlinked(self.folder / "index") / status.hexdigest()
        with contextlib.suppress(OSError, UnicodeDecodeError):
            file = os.open(index, os.O_RDONLY | cache_files.NO_FOLLOW)
            with os.fdopen(file, "rb") as remembered:
                digest = remembered.read(65).decode()
            if cache_files.SHA256.fullmatch(digest):
                return digest
        digest = digests.files(paths)
        with contextlib.suppress(OSError):
            index.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(index, digest)
        return digest

    def get(self, key: str, rows: int) -> np.ndarray | None:
        """The cached pixels of ``rows`` images (memory-mapped, read-only), or ``None``: absent, or not a complete
        float array of ``rows`` images (then removed).

        Raises:
            PlantedCacheFileError: the entry or the cache folder is a symbolic link.
        """
        path = cache_files.unlinked(self.folder) / f"{key}.npy"
        try:
            file = cache_files.open_file(path, os.O_RDONLY)
        except OSError:  # absent or unreadable (a planted link is raised)
            return None
        with os.fdopen(file, "rb") as opened:
            pixels = _mapped(opened, rows)
        if pixels is None:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return pixels

    def entry(self, key: str, rows: int) -> "Entry":
        """A new entry of ``rows`` images for ``key``, filled batch by batch, then committed."""
        return Entry(self, key, rows)

    def trim(self) -> None:
        """Remove the least recently used entries until the folder holds at most ``max_bytes``, counting the entries
        being written; those are never removed, unless a day old (left by a process that was killed)."""
        entries, writing, now = [], 0, time.time()
        for path in self.folder.glob("*.npy"):
            with contextlib.suppress(FileNotFoundError):
                status = path.lstat()
                if not path.name.startswith("."):
                    entries.append((status.st_mtime, status.st_size, path))
                elif now - status.st_mtime > STALE_SECONDS:
                    path.unlink()
                else:
                    writing += status.st_size
        total = writing + sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size


def _mapped(file, rows: int) -> np.ndarray | None:
    """The ``.npy`` array of an open regular ``file``, memory-mapped read-only, if it is a complete C-ordered float
    array of ``rows`` rows; else ``None``."""
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        return None
    try:
        version = np.lib.format.read_magic(file)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = header(file)
    except (ValueError, OSError, SyntaxError):
        return None
    offset = file.tell()
    if fortran_order or dtype.kind != "f" or len(shape) < 2 or shape[0] != rows \
            or os.fstat(file.fileno()).st_size != offset + dtype.itemsize * int(np.prod(shape)):
        return None
    return np.memmap(file, dtype=dtype, mode="r", offset=offset, shape=shape)


class Entry:
    """An entry being written: a memory-mapped temporary file, created at the first batch (which gives the shape and
    dtype), moved onto its name by :meth:`commit` (readers never see it before), removed by :meth:`discard`."""

    def __init__(self, cache: PixelCache, key: str, rows: int):
        self.cache, self.key, self.rows = cache, key, rows
        self.array, self.temporary, self.filled = None, None, 0

    def write(self, start: int, batch: np.ndarray) -> None:
        """Rows ``start ...`` of the entry (a batch's padding beyond the last image is left out). The first batch
        allocates the whole entry on disk.

        Raises:
            OSError: ``ENOSPC`` at the first batch when the disk cannot hold the entry (:func:`.npy_memmap.create`).
        """
        batch = batch[:max(0, self.rows - start)]
        if self.array is None:
            import secrets
            self.cache.folder.mkdir(parents=True, exist_ok=True)
            self.temporary = self.cache.folder / f".{self.key}.{os.getpid()}.{secrets.token_hex(4)}.tmp.npy"
            self.array = npy_memmap.create(self.temporary, batch.dtype, (self.rows, *batch.shape[1:]))
        self.array[start:start + len(batch)] = batch
        self.filled += len(batch)

    def commit(self) -> None:
        """Move the complete entry into the cache (an incomplete one is discarded), then trim the cache."""
        if self.array is None or self.filled != self.rows:
            self.discard()
            return
        self.array.flush()
        self.array = None
        os.replace(self.temporary, self.cache.folder / f"{self.key}.npy")
        self.cache.trim()

    def discard(self) -> None:
        self.array = None
        if self.temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                self.temporary.unlink()
