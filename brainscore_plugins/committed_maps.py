"""Where region maps computed by ``brainscore-plugins commit`` live: outside the installed package.

``commit`` writes into ``<data>/commitments/<family>/`` (``<data>`` = :func:`.settings.data_dir`,
``$BRAINSCORE_PLUGINS_DATA``): ``region_layer_map/<id>.json`` (Brain-Score's format), ``behavioral_readout/<id>.json``,
``layer_scores/<id>.csv`` and ``.png``, ``provenance/<id>.json``. A packaged plugin folder carries its own maps and
registers its folder (:func:`add_folder`); such folders are searched first, so a packaged folder's own maps win for
its identifiers. Catalog maps (published by a study) come from the catalog and are never looked up here.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

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


def read(located: Located) -> tuple[dict[str, str], str | None]:
    """(region -> layer map, behavioral readout layer or ``None`` when no readout file was written) at ``located``."""
    folder, identifier = located
    readout_path = folder / "behavioral_readout" / f"{identifier}.json"
    readout = json.loads(readout_path.read_text())["behavioral_readout_layer"] if readout_path.is_file() else None
    return json.loads((folder / "region_layer_map" / f"{identifier}.json").read_text()), readout


def writable_folder(family: str, output: str | Path | None = None) -> Path:
    """The folder ``commit`` will write into (``output``, else :func:`data_folder`), checked writable now, before a
    commitment runs, without creating it (nothing is left behind when the commitment then fails).

    Raises:
        CommitmentFailedError: the folder cannot be created or written (the message names the variable to set).
    """
    folder = Path(output) if output is not None else data_folder(family)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.TemporaryDirectory(dir=existing, prefix=".write-probe-"):
            pass
    except OSError as error:
        hint = "choose another --output" if output is not None else f"set {settings.DATA} to a writable folder"
        raise CommitmentFailedError(f"cannot write the commitment into {folder} ({error.strerror or error}); "
                                    f"{hint}") from error
    return folder
