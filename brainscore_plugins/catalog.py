"""The checkpoint catalog: one CSV row per checkpoint, read once, resolved by identifier.

Identifier scheme (see README, "Identifiers"):

* ``<prefix>_<model_id>``          the model's latest checkpoint, e.g. ``spvvs_resnet18_imagenet_full``
* ``<prefix>_<model_id>.ep<N>``    the checkpoint after epoch N, e.g. ``spvvs_resnet18_imagenet_full.ep10``

``<prefix>`` names the family (``spvvs`` = scaling-primate-vvs). No study model id contains a ``.``, so the
scheme is unambiguous, and the prefix keeps our identifiers apart from Brain-Score's own plugins (which register
some study model ids verbatim). The study's own model id (optionally with ``.ep<N>``) is accepted as an alias.

Families whose models have a single published checkpoint (``hlvit`` = humanlike-vits) leave ``epoch`` empty; their
identifier is ``<prefix>_<model_id>`` (e.g. ``hlvit_vith14@476_1.0_1``, ``hlvit_vith14@476_1.0_1-finetuned``).
"""
from __future__ import annotations

import csv
import difflib
import functools
from dataclasses import dataclass, fields
from typing import Iterator

from . import families
from .errors import ModelNotFoundError

REGIONS = ("V1", "V2", "V4", "IT")


@dataclass(frozen=True)
class Entry:
    """One checkpoint. Strings as in the CSV; numbers parsed. ``family`` is the model family's prefix."""

    identifier: str
    family: str
    model_id: str
    epoch: int | None  # None: the family publishes one checkpoint per model
    latest: bool
    arch: str
    training_method: str  # supervised, adversarial, simclr, dino, mae, mae-finetuned
    checkpoint_format: str  # one of the family's declared formats (families.Family.formats)
    dataset: str
    num_classes: int
    weights_key: str
    url: str  # HTTP(S) source of the weights file ("" for a Hugging Face Hub file)
    hf_repo: str  # Hugging Face Hub model repository holding the file ("" for a URL)
    weights_file: str  # the file's path in the mirror and cache (and in its Hub repository)
    sha256: str
    resize: int
    crop: int
    interpolation: str
    n_params: int | None
    V1: str
    V2: str
    V4: str
    IT: str
    readout: str
    commitment_source: str
    unsupported: str

    @property
    def bare_identifier(self) -> str:
        return f"{self.family}_{self.model_id}"

    def identifier_of(self, name: str) -> str:
        """Our registered identifier for ``name``, which resolved to this entry: itself, or ``<prefix>_<name>`` for
        a study model id (with or without ``.ep<N>``)."""
        return name if name in (self.identifier, self.bare_identifier) else f"{self.family}_{name}"

    @property
    def mirror_path(self) -> str:
        """The file's path in the mirror: ``weights_file``, under its Hub repository when that is a bare file name
        that does not say which model it holds (every timm repository's ``model.safetensors``)."""
        return f"{self.hf_repo}/{self.weights_file}" if self.hf_repo and "/" not in self.weights_file \
            else self.weights_file

    @property
    def region_layer_map(self) -> dict[str, str]:
        return {region: getattr(self, region) for region in REGIONS if getattr(self, region)}

    @property
    def layers(self) -> list[str]:
        """Committed layers in first-use order, readout last (Brain-Score's default readout is ``layers[-1]``)."""
        ordered = dict.fromkeys(self.region_layer_map.values())
        ordered.pop(self.readout, None)
        return [*ordered, self.readout] if self.readout else list(ordered)


CSV_COLUMNS = tuple(f.name for f in fields(Entry) if f.name != "family")


def _parse(row: dict, family: str) -> Entry:
    return Entry(
        family=family,
        epoch=int(row["epoch"]) if row["epoch"] else None,
        latest=row["latest"] == "1",
        num_classes=int(row["num_classes"]),
        resize=int(row["resize"]),
        crop=int(row["crop"]),
        n_params=int(row["n_params"]) if row["n_params"] else None,
        **{k: row[k] for k in CSV_COLUMNS if k not in
           ("epoch", "latest", "num_classes", "resize", "crop", "n_params")},
    )


@functools.lru_cache(maxsize=None)
def entries(family: str | None = None) -> tuple[Entry, ...]:
    """All checkpoint rows (one per epoch checkpoint), of one family or of all.

    Raises:
        ModelNotFoundError: ``family`` is not a registered family prefix.
    """
    selected = [families.get(family)] if family else list(families.all_families().values())
    rows = []
    for fam in selected:
        with open(fam.catalog_path, newline="") as f:
            rows.extend(_parse(row, fam.prefix) for row in csv.DictReader(f))
    return tuple(rows)


@functools.lru_cache(maxsize=None)
def _index() -> dict[str, Entry]:
    index = {}
    for entry in entries():
        index[entry.identifier] = entry
        if entry.latest:
            index[entry.bare_identifier] = entry
    return index


@functools.lru_cache(maxsize=None)
def _aliases() -> dict[str, str]:
    """Study model ids (with and without ``.ep<N>``) -> our identifiers."""
    aliases = {}
    for identifier, entry in _index().items():
        aliases[identifier[len(entry.family) + 1:]] = identifier
    return aliases


def identifiers(family: str | None = None, checkpoints: bool = False) -> list[str]:
    """Registered identifiers: one per model (its latest checkpoint), plus every epoch checkpoint if asked."""
    return select(family=family, checkpoints=checkpoints)


def resolve(name: str) -> Entry:
    """The catalog entry for an identifier or a study model id.

    Raises:
        ModelNotFoundError: an unknown name (the message suggests close matches).
    """
    index = _index()
    if name in index:
        return index[name]
    if name in _aliases():
        return index[_aliases()[name]]
    candidates = list(index) + list(_aliases())
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ModelNotFoundError(
        f"Unknown model identifier {name!r}.{hint} "
        f"Run `brainscore-plugins list --checkpoints` for every identifier.")


def select(patterns=(), *, family: str | None = None, arch: str | None = None, dataset: str | None = None,
           checkpoints: bool = False) -> list[str]:
    """Registered identifiers matching any of ``patterns`` and every given filter, in catalog order.

    A pattern is an identifier or study model id (taken as it is, epoch checkpoints included) or a shell glob over
    identifiers (``spvvs_resnet*_imagenet_full``); no pattern selects every identifier. Globs select one identifier per
    model (its latest checkpoint), every epoch checkpoint too with ``checkpoints``. ``family``, ``arch`` and
    ``dataset`` are exact values or globs of those columns.

    Raises:
        ModelNotFoundError: a pattern without glob characters that names nothing, or an unknown family.
    """
    import fnmatch

    exact = {resolve_identifier(p) for p in patterns if not any(c in p for c in "*?[")}
    globs = [p for p in patterns if any(c in p for c in "*?[")]
    chosen = []
    for identifier, entry in registered(family):
        by_glob = (not patterns or any(fnmatch.fnmatchcase(identifier, g) for g in globs)) and (
            checkpoints or identifier == entry.bare_identifier)
        if not (identifier in exact or by_glob):
            continue
        if all(value is None or fnmatch.fnmatchcase(getattr(entry, column), value)
               for column, value in (("arch", arch), ("dataset", dataset))):
            chosen.append(identifier)
    return chosen


def resolve_identifier(name: str) -> str:
    """The registered identifier ``name`` stands for (itself, or ours for a study model id).

    Raises:
        ModelNotFoundError: as :func:`resolve`.
    """
    return resolve(name).identifier_of(name)  # an unknown name raises, with suggestions


def registered(family: str | None = None) -> Iterator[tuple[str, Entry]]:
    """(identifier, entry) for every registered identifier: the bare latest ones and all epoch checkpoints."""
    for entry in entries(family):
        if entry.latest and entry.bare_identifier != entry.identifier:
            yield entry.bare_identifier, entry
        yield entry.identifier, entry
