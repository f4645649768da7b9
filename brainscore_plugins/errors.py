"""One error hierarchy: every failure ``brainscore_plugins`` reports on purpose is a :class:`BrainscorePluginsError`.

The command line prints any of them on one line (no traceback); Python callers can catch the base or one kind.
"""
from __future__ import annotations


class BrainscorePluginsError(Exception):
    """Base of the errors below: the message names the problem and the fix."""


class ModelNotFoundError(BrainscorePluginsError, KeyError):
    """An identifier (or family) that is not in the catalog."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.args[0]


class UnsupportedModelError(BrainscorePluginsError):
    """A catalogued checkpoint whose architecture cannot be built."""


class NotCommittedError(BrainscorePluginsError):
    """A model that has no region -> layer map to build a brain model with (commit it first)."""


class WeightsUnavailableError(BrainscorePluginsError):
    """The weights are neither mirrored nor cached and cannot be downloaded."""


class CheckpointInvalidError(BrainscorePluginsError):
    """A weights file that is not the checkpoint it should be: unreadable, unsafe, truncated or of another model."""


class ChecksumMismatchError(CheckpointInvalidError):
    """A file's sha256 differs from the published or recorded one."""


class CommitmentFailedError(BrainscorePluginsError):
    """Region commitment could not choose layers (its targets or candidate layers are unusable)."""


class CommitmentInputError(CommitmentFailedError, ValueError):
    """What commitment was given cannot be committed on: unusable targets (NaN responses, mismatched stimulus ids, an
    unknown or unsupported benchmark) or candidate layers (unknown, none with a tensor output)."""


class BenchmarkDataUnavailableError(CommitmentFailedError):
    """A benchmark named by identifier could not be loaded (its data are neither cached nor reachable)."""


class AlgonautsDataError(BrainscorePluginsError, ValueError):
    """The Algonauts 2023 challenge data folder is missing, incomplete or inconsistent (the message names the
    expected layout and exactly what is wrong)."""


class ResultsTableError(BrainscorePluginsError, ValueError):
    """A results table that cannot be read: not Parquet, not a results table, or written by a newer version."""


class BenchmarkNotFoundError(BrainscorePluginsError, ValueError):
    """A benchmark identifier that no installed Brain-Score plugin registers."""


class ScalingInputError(BrainscorePluginsError, ValueError):
    """A table a scaling fit cannot use (missing columns, NaN scores, non-positive resources, too few points)."""


class ReportInputError(BrainscorePluginsError, ValueError):
    """A results table or image list that cannot be reported."""


class NotLinkedError(BrainscorePluginsError):
    """Our plugin folders are not linked into the installed ``brainscore_vision``, which then cannot find them."""


class PlantedCacheFileError(BrainscorePluginsError):
    """A cache file or folder that is a symbolic link, which our caches never create: it is never followed."""
