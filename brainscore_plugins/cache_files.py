"""Files of our caches, opened and inspected without following a symbolic link.

Our caches never create a link, so one where a cache file or folder should be was planted: following it would read,
trust or overwrite whatever it points to. Each function here refuses one with an error naming it (``error``: the
caller's class, :class:`~.errors.PlantedCacheFileError` by default).
"""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from .errors import PlantedCacheFileError

NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
SHA256 = re.compile(r"[0-9a-f]{64}")  # a hex digest, as our caches write them


def planted(path: Path, error: type[Exception] = PlantedCacheFileError) -> Exception:
    """The error for a symbolic link found at ``path``."""
    return error(f"{path} is a symbolic link (to {os.readlink(path)}), which a cache file or folder never is: refusing "
                 f"to follow it. Remove the link, and check who can write to {path.parent}.")


def unlinked(folder: Path, error: type[Exception] = PlantedCacheFileError) -> Path:
    """``folder``, once it is not a symbolic link."""
    if Path(folder).is_symlink():
        raise planted(Path(folder), error)
    return Path(folder)


def open_file(path: Path, flags: int, error: type[Exception] = PlantedCacheFileError) -> int:
    """``os.open`` of a cache file, never through a symbolic link; a created file gets the umask's mode."""
    try:
        return os.open(path, flags | NO_FOLLOW | BINARY, 0o666)
    except OSError as failure:
        if failure.errno in (errno.ELOOP, errno.EMLINK, errno.EEXIST) and Path(path).is_symlink():
            raise planted(Path(path), error) from failure
        raise


def lstat(path: Path, error: type[Exception] = PlantedCacheFileError) -> os.stat_result | None:
    """The cache file's status (``None``: absent); a symbolic link is refused."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(status.st_mode):
        raise planted(Path(path), error)
    return status
