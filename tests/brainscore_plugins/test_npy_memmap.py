"""New memory-mapped .npy files have their disk space allocated before anything is written, so a full disk is an
OSError naming the room needed (not a SIGBUS that kills the process), and nothing is left behind."""
from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest

from brainscore_plugins import npy_memmap


def test_the_file_is_allocated_not_sparse_and_reads_back(tmp_path):
    array = npy_memmap.create(tmp_path / "a.npy", np.float32, (300, 1000))
    path = tmp_path / "a.npy"
    assert path.stat().st_blocks * 512 >= path.stat().st_size > 300 * 1000 * 4  # every byte on disk, header too
    array[:] = np.arange(300 * 1000, dtype=np.float32).reshape(300, 1000)
    array.flush()
    del array
    np.testing.assert_array_equal(np.load(path), np.arange(300 * 1000, dtype=np.float32).reshape(300, 1000))


def _full(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _unsupported(*args):
    raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))


@pytest.mark.parametrize("system", ["linux", "without posix_fallocate", "a file system that cannot allocate"])
def test_a_full_disk_is_an_oserror_naming_the_room_and_leaves_nothing(system, tmp_path, monkeypatch):
    if system == "linux":
        monkeypatch.setattr(os, "posix_fallocate", _full)
    else:  # macOS, or a file system without fallocate: the free space is checked instead
        if system == "without posix_fallocate":
            monkeypatch.delattr(os, "posix_fallocate", raising=False)
        else:
            monkeypatch.setattr(os, "posix_fallocate", _unsupported)
        free = shutil.disk_usage(tmp_path)._replace(free=10 ** 6)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    named = r"No room for 0\.01 GB in .* \(\d+\.\d\d GB free\) to write big\.npy: free disk space there"
    with pytest.raises(OSError, match=named) as caught:
        npy_memmap.create(tmp_path / "big.npy", np.float32, (2000, 1000))
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_another_error_is_raised_as_it_is_and_leaves_nothing(tmp_path, monkeypatch):
    def failing(*args):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(os, "posix_fallocate", failing)
    with pytest.raises(OSError, match="Input/output error") as caught:
        npy_memmap.create(tmp_path / "a.npy", np.float64, (10, 10))
    assert caught.value.errno == errno.EIO and list(tmp_path.iterdir()) == []


def test_a_file_system_that_cannot_allocate_ahead_with_room_gets_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "posix_fallocate", _unsupported)
    array = npy_memmap.create(tmp_path / "a.npy", np.float32, (4, 5))
    array[:] = 1
    array.flush()
    del array
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.ones((4, 5), np.float32))
