"""The errors region_commitment raises for what it is given: one base class, :class:`RegionCommitmentError`.

Errors of the environment keep their own classes: a missing file is a ``FileNotFoundError``, a full disk an
``OSError`` (:class:`DiskFullError` while ``commit`` writes features), NaN activations a ``FloatingPointError``.
"""
from __future__ import annotations


class RegionCommitmentError(Exception):
    """Base class of region_commitment's errors."""


class BenchmarkUnavailableError(RegionCommitmentError):
    """A benchmark named by identifier cannot be loaded: no installed Brain-Score plugin registers it, or its data
    are neither cached nor downloadable (offline, no access)."""


class InvalidTargetError(RegionCommitmentError, ValueError):
    """A target cannot be made from the data or benchmark given: NaN or constant neuroids only, stimulus ids missing
    from the stimulus set or listed twice with different files or metadata, too few stimuli (per class) to split,
    missing dimensions, coordinates or columns, an unsupported benchmark."""


class CommitmentError(RegionCommitmentError, ValueError):
    """``commit`` cannot be carried out as asked: unknown, duplicate or empty candidate layers, no layer with a
    tensor output, ``n_components`` outside 1 to the number of reference images, a reference folder too small for
    Brain-Score's selection, every layer scoring NaN on a target, an identifier that is not a file name."""


class DiskFullError(RegionCommitmentError, OSError):
    """The disk filled up (``errno.ENOSPC``) while features were written; the feature files written are removed."""
