"""Where region maps computed by ``brainscore-plugins commit`` live: outside the installed package.

``commit`` writes into ``<data>/commitments/<family>/`` (``<data>`` = :func:`.settings.data_dir`,
``$BRAINSCORE_PLUGINS_DATA``): ``region_layer_map/<id>.json`` (Brain-Score's format), ``behavioral_readout/<id>.json``,
``layer_scores/<id>.csv`` and ``.png``, ``provenance/<id>.json``. A packaged plugin folder carries its own maps and
registers its folder (:func:`add_folder`); such folders are searched first, so a packaged folder's own maps win for
its identifiers. Catalog maps (published by a study) come from the catalog and are never looked up here.
"""
from __future__ import annotations

import json
from pathlib import Path

from region_commitment import atomic

from . import settings
from .errors import CommitmentFailedError

Located = tuple[Path, str]  # (folder, identifier) of a map written by ``commit``
_FOLDERS: list[Path] = []  # plugin folders with maps of their own, searched before the data folder


def add_folder(folder: str | Path) -> None:
    """Search ``folder`` (with ``region_layer_map/``, ``behavioral_readout/``, ``provenance/``) before the data
    folder."""
    folder = Path(folder)
    if folder not in _FOLDERS:
        _FOLDERS.insert(0, folder)


def data_folder(family: str) -> Path:
    """``<data>/commitments/<family>``: where ``commit`` writes."""
    return settings.data_dir() / "commitments" / family


def locate(entry, name: str) -> Located | None:
    """(folder, identifier) of the map computed for ``name`` (its identifier, or the epoch identifier of the same
    checkpoint), or ``None``."""
    names = dict.fromkeys([name, entry.identifier] + ([entry.bare_identifier] if entry.latest else []))
    for folder in [*_FOLDERS, data_folder(entry.family)]:
        for identifier in names:
            if (folder / "region_layer_map" / f"{identifier}.json").is_file():
                return folder, identifier
    return None


MAX_FILE_BYTES = 1 << 20  # a map or readout file is a few hundred bytes


def read(located: Located) -> tuple[dict[str, str], str | None]:
    """(region -> layer map, behavioral readout layer or ``None`` when no readout file was written) at ``located``.

    Raises:
        CommitmentFailedError: a file that is not what ``commit`` writes (damaged, truncated, too large, edited);
            the message names it and the fix.
    """
    folder, identifier = located
    readout_path = folder / "behavioral_readout" / f"{identifier}.json"
    readout = None
    if readout_path.is_file():
        readout = read_json(readout_path, identifier).get("behavioral_readout_layer")
        if not isinstance(readout, str) or not readout:
            raise _damaged(readout_path, identifier, "no behavioral_readout_layer name")
    map_path = folder / "region_layer_map" / f"{identifier}.json"
    region_map = read_json(map_path, identifier)
    if not region_map or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in region_map.items()):
        raise _damaged(map_path, identifier, "not a map of regions to layer names")
    return region_map, readout


def read_json(path: Path, identifier: str) -> dict:
    """A JSON object from a file ``commit`` wrote for ``identifier``, at most :data:`MAX_FILE_BYTES` read.

    Raises:
        CommitmentFailedError: not such a file (named, with the fix).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise _damaged(path, identifier, f"larger than {MAX_FILE_BYTES:,} bytes")
        value = json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as error:  # unreadable, not UTF-8, not JSON
        raise _damaged(path, identifier, str(error).splitlines()[0] if str(error) else type(error).__name__) from None
    if not isinstance(value, dict):
        raise _damaged(path, identifier, f"a JSON {type(value).__name__}, not an object")
    return value


def _damaged(path: Path, identifier: str, what: str) -> CommitmentFailedError:
    return CommitmentFailedError(f"the commitment file {path} is damaged ({what}); delete it and run "
                                 f"`brainscore-plugins commit {identifier}` again")


def writable_folder(family: str, output: str | Path | None = None) -> Path:
    """The folder ``commit`` will write into (``output``, else :func:`data_folder`), checked writable now, before a
    commitment runs, without creating it (nothing is left behind when the commitment then fails).

    Raises:
        CommitmentFailedError: the folder cannot be created or written (the message names the variable to set).
    """
    folder = Path(output) if output is not None else data_folder(family)
    try:
        atomic.probe_writable(folder)
    except OSError as error:
        hint = "choose another --output" if output is not None else f"set {settings.DATA} to a writable folder"
        raise CommitmentFailedError(f"cannot write the commitment into {folder} ({error.strerror or error}); "
                                    f"{hint}") from error
    return folder
