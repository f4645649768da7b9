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
from pathlib import Path
from typing import Iterator

DATA_DIR = Path(__file__).resolve().parent / "data"
FAMILIES = {"spvvs": "scaling_primate_vvs.csv", "hlvit": "humanlike_vits.csv"}
REGIONS = ("V1", "V2", "V4", "IT")


class UnknownModelError(KeyError):
    """An identifier that is not in the catalog."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.args[0]


class UnsupportedModelError(RuntimeError):
    """A catalogued checkpoint whose architecture cannot be built."""


@dataclass(frozen=True)
class Entry:
    """One checkpoint. Strings as in the CSV; numbers parsed."""

    identifier: str
    family: str
    model_id: str
    epoch: int | None  # None: the family publishes one checkpoint per model
    latest: bool
    arch: str
    method: str
    dataset: str
    num_classes: int
    weights_key: str
    url: str
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

    @property
    def relative_path(self) -> str:
        """Path of the weights below ``checkpoints/`` in the URL (``<model_id>/ep<N>.pt``), or the file's path in its
        Hugging Face repository (``vits14/vits14_1.0_1.pth``)."""
        if self.hf_repo:
            return self.hf_repo[1]
        return self.url.split("/checkpoints/", 1)[1]

    @property
    def hf_repo(self) -> tuple[str, str] | None:
        """(repo id, file path) when the weights are a Hugging Face Hub file (``huggingface.co/<repo>/resolve/...``)."""
        from urllib.parse import unquote
        head, sep, tail = self.url.partition("://huggingface.co/")
        if not sep or "/resolve/" not in tail:
            return None
        repo, path = tail.split("/resolve/", 1)
        return repo, unquote(path.split("/", 1)[1])

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


def write_rows(family: str, rows: list[dict]) -> Path:
    """Write a family's catalog CSV (used by the generator scripts under ``scripts/``)."""
    out = DATA_DIR / FAMILIES[family]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


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
    """All checkpoint rows (one per epoch checkpoint), of one family or of all."""
    selected = [family] if family else list(FAMILIES)
    unknown = [f for f in selected if f not in FAMILIES]
    if unknown:
        raise UnknownModelError(f"Unknown family {unknown[0]!r}; known families: {', '.join(FAMILIES)}")
    rows = []
    for fam in selected:
        with open(DATA_DIR / FAMILIES[fam], newline="") as f:
            rows.extend(_parse(row, fam) for row in csv.DictReader(f))
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
    return [identifier for identifier, entry in registered(family)
            if checkpoints or identifier == entry.bare_identifier]


def resolve(name: str) -> Entry:
    """The catalog entry for an identifier or a study model id; unknown names get close-match suggestions."""
    index = _index()
    if name in index:
        return index[name]
    if name in _aliases():
        return index[_aliases()[name]]
    candidates = list(index) + list(_aliases())
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"Unknown model identifier {name!r}.{hint} "
        f"Run `brainscore-plugins list --checkpoints` for every identifier.")


def registered(family: str | None = None) -> Iterator[tuple[str, Entry]]:
    """(identifier, entry) for every registered identifier: the bare latest ones and all epoch checkpoints."""
    for entry in entries(family):
        if entry.latest and entry.bare_identifier != entry.identifier:
            yield entry.bare_identifier, entry
        yield entry.identifier, entry
