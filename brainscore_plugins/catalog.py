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
import fnmatch
import functools
import re
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Iterator

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


def row(identifier: str, entry: Entry) -> dict:
    """The catalog row of a registered identifier as a dict: ``identifier`` as registered (a model's bare
    identifier stays bare), ``checkpoint`` the epoch checkpoint it stands for."""
    return {**asdict(entry), "identifier": identifier, "checkpoint": entry.identifier}


CSV_COLUMNS = tuple(f.name for f in fields(Entry) if f.name != "family")


_CONVERTERS = {"epoch": lambda v: int(v) if v else None, "latest": lambda v: v == "1", "num_classes": int,
               "resize": int, "crop": int, "n_params": lambda v: int(v) if v else None}


def _read(path, family: str) -> list[Entry]:
    """The entries of one catalog CSV (positional reading: the catalogs are read on every command)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [name for name in CSV_COLUMNS if name not in header]
        if missing:
            raise ModelNotFoundError(f"the catalog {path} lacks column(s) {', '.join(missing)}; regenerate it with "
                                     f"its family's generator script")
        columns = [(None, None) if f.name == "family" else (header.index(f.name), _CONVERTERS.get(f.name))
                   for f in fields(Entry)]
        return [Entry(*[family if position is None else convert(values[position]) if convert else values[position]
                        for position, convert in columns]) for values in reader]


@functools.lru_cache(maxsize=None)
def entries(family: str | None = None) -> tuple[Entry, ...]:
    """All checkpoint rows (one per epoch checkpoint), of one family or of all.

    Raises:
        ModelNotFoundError: ``family`` is not a registered family prefix.
    """
    rows = []
    for prefix in [families.check_prefix(family)] if family else families.prefixes():
        rows.extend(_read(families.catalog_path(prefix), prefix))
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


def list_models(pattern: str | Iterable[str] = "", family: str | None = None, checkpoints: bool = False, *,
                arch: str | None = None, dataset: str | None = None, exclude: str | Iterable[str] = ()) -> list[str]:
    """Identifiers matching ``pattern``, as timm's ``list_models``: an identifier, a study model id or a shell glob
    (``"*resnet18*"``, matched against our identifiers and the studies' model ids), or a list of them; ``""`` lists
    everything. Globs give one identifier per model (its latest checkpoint), every epoch checkpoint too with
    ``checkpoints``; ``family``, ``arch`` and ``dataset`` filter (values or globs); ``exclude`` drops identifiers
    matching its globs. A pattern that matches nothing adds nothing (the command line's ``list`` stops with close
    matches instead)."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    excluded = [exclude] if isinstance(exclude, str) else list(exclude)
    chosen = select([p for p in patterns if p], family=family, arch=arch, dataset=dataset, checkpoints=checkpoints,
                    strict=False)
    return [i for i in chosen if not any(_matches(i, resolve(i), glob) for glob in excluded)]


def lookup(name: str) -> Entry | None:
    """The catalog entry of an identifier or study model id, or ``None``: dictionary lookups only, no suggestions
    (for callers that check many names, e.g. a report's rows)."""
    index = _index()
    return index.get(name) or (index[_aliases()[name]] if name in _aliases() else None)


def resolve(name: str) -> Entry:
    """The catalog entry for an identifier or a study model id.

    Raises:
        ModelNotFoundError: an unknown name (the message suggests close matches).
    """
    entry = lookup(name)
    if entry is not None:
        return entry
    candidates = list(_index()) + list(_aliases())
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ModelNotFoundError(
        f"Unknown model identifier {name!r}.{hint} "
        f"Run `brainscore-plugins list --checkpoints` for every identifier.")


def select(patterns=(), *, family: str | None = None, arch: str | None = None, dataset: str | None = None,
           checkpoints: bool = False, strict: bool = True) -> list[str]:
    """Registered identifiers matching any of ``patterns`` and every given filter, in catalog order.

    A pattern is an identifier or study model id (taken as it is, epoch checkpoints included) or a shell glob over
    identifiers and study model ids (``spvvs_resnet*_imagenet_full``, ``resnet18*``); no pattern selects every
    identifier. Globs select one identifier per model (its latest checkpoint), every epoch checkpoint too with
    ``checkpoints``. ``family``, ``arch`` and ``dataset`` are exact values or globs of those columns.

    Raises:
        ModelNotFoundError: an unknown family; with ``strict`` (else it adds nothing), a pattern that names or matches
            no identifier (the message suggests close matches, or ``checkpoints`` where only epoch checkpoints match).
    """
    exact, globs = set(), []
    for pattern in patterns:
        if _is_glob(pattern):
            globs.append(pattern)
        elif strict or pattern in _index() or pattern in _aliases():
            exact.add(resolve_identifier(pattern))  # an unknown name raises, with suggestions
    chosen, matched, matched_latest = [], set(), set()
    for identifier, entry in registered(family):
        hits = [glob for glob in globs if _matches(identifier, entry, glob)]
        is_latest = identifier == entry.bare_identifier
        matched.update(hits)
        if is_latest:
            matched_latest.update(hits)
        if not (identifier in exact or ((not patterns or hits) and (checkpoints or is_latest))):
            continue
        if all(value is None or fnmatch.fnmatchcase(getattr(entry, column), value)
               for column, value in (("arch", arch), ("dataset", dataset))):
            chosen.append(identifier)
    for glob in globs if strict else ():
        if glob not in matched:
            raise ModelNotFoundError(_no_match(glob, family))
        if glob not in matched_latest and not checkpoints:
            raise ModelNotFoundError(f"{glob!r} matches only epoch checkpoints; add --checkpoints (checkpoints=True) "
                                     f"to select them")
    return chosen


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _matches(identifier: str, entry: Entry, glob: str) -> bool:
    """``glob`` matches the identifier or the study's model id in it."""
    return fnmatch.fnmatchcase(identifier, glob) or fnmatch.fnmatchcase(identifier[len(entry.family) + 1:], glob)


_SEPARATORS = re.compile(r"([_.@-])")


@functools.lru_cache(maxsize=None)
def _vocabulary() -> frozenset[str]:
    """Every word of every identifier (split at ``_ . @ -``)."""
    return frozenset(word for name in _index() for word in _SEPARATORS.split(name)[::2] if word)


def _no_match(glob: str, family: str | None) -> str:
    """'no identifier matches <glob>', with the glob's misspelt words corrected where that makes it match."""
    vocabulary = _vocabulary()
    words = _SEPARATORS.split(glob)
    for position in range(0, len(words), 2):
        word = words[position]
        core = word.strip("*?")
        if not core or _is_glob(core) or any(fnmatch.fnmatchcase(w, word) for w in vocabulary):
            continue
        close = difflib.get_close_matches(core, vocabulary, n=1, cutoff=0.6)
        if close:
            words[position] = word.replace(core, close[0])
    corrected = "".join(words)
    where = f" of family {family!r}" if family else ""
    hint = (f" Did you mean {corrected!r}?" if corrected != glob and any(
        _matches(i, e, corrected) for i, e in registered(family)) else "")
    return (f"No identifier{where} matches {glob!r}.{hint} Globs match our identifiers and the studies' model ids; "
            f"run `brainscore-plugins list` to see them.")


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
