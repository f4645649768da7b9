"""New ``.npy`` files written through a memory map, their disk space allocated before anything is written.

``np.lib.format.open_memmap`` creates a sparse file: when the disk fills up while the map is written, the kernel
kills the process with SIGBUS ("Bus error": no Python error, no clean-up, a sweep lost). :func:`create` allocates
every byte first, so a full disk is an ``OSError`` (``ENOSPC``) naming the file and the room it needs, raised before
a byte is written, and the file is removed.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np

_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)  # posix_fallocate where the file system has none


def create(path: str | Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file at ``path`` of ``shape`` and ``dtype``, memory-mapped for writing, its space allocated.

    Raises:
        OSError: ``ENOSPC`` (or ``EDQUOT``) when the disk (or quota) cannot hold it; nothing is left at ``path``.
    """
    path = Path(path)
    np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()  # the header, and a sparse body
    size = path.stat().st_size
    try:
        _allocate(path, size)
    except OSError as error:
        path.unlink(missing_ok=True)
        if error.errno not in _FULL:
            raise
        free = shutil.disk_usage(path.parent).free
        raise OSError(error.errno, f"No room for {size / 1e9:.2f} GB in {path.parent} ({free / 1e9:.2f} GB free) "
                                   f"to write {path.name}: free disk space there") from None
    return np.load(path, mmap_mode="r+")


def _allocate(path: Path, size: int) -> None:
    """Allocate the first ``size`` bytes of ``path`` on disk; where the system or the file system cannot allocate
    ahead (macOS, some network file systems), check them against the free space instead."""
    if hasattr(os, "posix_fallocate"):
        try:
            with open(path, "r+b") as file:
                os.posix_fallocate(file.fileno(), 0, size)
            return
        except OSError as error:
            if error.errno not in _UNSUPPORTED:
                raise
    if shutil.disk_usage(path.parent).free < size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
