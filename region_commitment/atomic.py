"""Atomic file writes: a temporary file in the target's folder, moved onto the target with ``os.replace``, so a
reader sees the old file or the complete new one, never a partly written one."""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (parent folders created; unique per process and thread, same suffix,
    so writers that infer the format from it still do); move it onto ``path`` when the block succeeds, remove it
    when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def probe_writable(folder: Path) -> None:
    """Check that ``folder`` could be created (if missing) and written, without creating it: a temporary folder is
    made and removed in its nearest existing ancestor.

    Raises:
        OSError: it cannot (``NotADirectoryError`` when that ancestor is a file).
    """
    import tempfile
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is not a folder")
    with tempfile.TemporaryDirectory(dir=existing, prefix=".write-probe-"):
        pass
