"""Where a region -> layer map comes from (published by the study, borrowed from another of its models, an
architecture rule, or committed here), and whether a benchmark being scored shares data with the ones that chose
it."""
from __future__ import annotations

import logging

from . import catalog, committed_maps

_logger = logging.getLogger(__name__)

# Provenance of the region maps. The study's layers were chosen by brainscore/src/layer_selection.py of
# epflneuroailab/scaling-primate-vvs: Brain-Score's LayerSelection and RegionLayerMap over brain_transformation's
# STANDARD_REGION_BENCHMARKS (the four public benchmarks below); that code selects no behavioral readout.
STUDY_SELECTION = {
    "benchmarks": {"V1": "FreemanZiemba2013public.V1-pls", "V2": "FreemanZiemba2013public.V2-pls",
                   "V4": "MajajHong2015public.V4-pls", "IT": "MajajHong2015public.IT-pls"},
    "behavioral_readout": "not selected on data: one fixed final layer per architecture in commitments.json (the "
                          "same for every dataset, sample size and seed); no selection of it in the study's code",
    "source": "epflneuroailab/scaling-primate-vvs brainscore/src/layer_selection.py: Brain-Score LayerSelection + "
              "RegionLayerMap over brain_transformation.STANDARD_REGION_BENCHMARKS, visual_degrees=8",
}
BORROW_RULES = {
    "variant": "the entry of the same arch, data, sample size and seed, filed for the plain run of which this id is "
               "a variant (another attack or recipe)",
    "same-arch-data": "the same arch and training data (or method), another sample size or seed",
    "same-arch-imagenet": "the arch's supervised full-ImageNet entry: none is filed for this model's data or method",
    "sibling-arch": "an arch with the same layer names (a recipe ablation's torchvision base, a width sibling)",
}


def map_provenance(name: str, entry: catalog.Entry | None = None) -> dict:
    """Where the region -> layer map of ``name`` comes from. ``kind``: ``published`` (the study's commitment of this
    model), ``borrowed`` (the study's commitment of another model: ``from``, ``rule``), ``architecture-rule``
    (CORnet-S's anatomical map), ``committed`` (by ``brainscore-plugins commit``: its provenance record as written;
    see :mod:`.committed_maps` for where)
    or ``uncommitted`` (no map yet). Study maps carry ``selection``: the benchmarks that chose the layers.
    ``entry``: the catalog entry of ``name``, where the caller resolved it already."""
    entry = entry or catalog.resolve(name)
    return record(entry, None if entry.region_layer_map else committed_maps.locate(entry, name))


def record(entry: catalog.Entry, located: committed_maps.Located | None) -> dict:
    """:func:`map_provenance` of ``entry``, whose computed map (if any) :func:`.committed_maps.locate` found at
    ``located``."""
    if entry.region_layer_map:
        return _catalog_provenance(entry)
    if located is None:
        return {"kind": "uncommitted", "reason": entry.commitment_source}
    return _committed_provenance(*located)


def _catalog_provenance(entry: catalog.Entry) -> dict:
    import re

    maps = {"region_layer_map": entry.region_layer_map, "behavioral_readout_layer": entry.readout}
    kind, _, rule = entry.commitment_source.partition(":")
    if kind == "architecture-rule":
        return {"kind": kind, "rule": rule, **maps}
    match = re.fullmatch(r"(published|borrowed-from):([^/]+)/([^/]+)/(seed-\d+)(?: \(([a-z-]+)\))?",
                         entry.commitment_source)
    if match is None or (match[1] == "borrowed-from") != (match[5] in BORROW_RULES):
        raise ValueError(f"{entry.identifier}: unreadable commitment_source {entry.commitment_source!r} in the "
                         f"catalog; regenerate it with `python scripts/build_catalog.py`")
    source = {"file": "commitments.json", "key": match[2], "data": match[3], "seed": match[4]}
    if match[1] == "published":
        return {"kind": "published", "entry": source, **maps, "selection": STUDY_SELECTION}
    return {"kind": "borrowed", "from": source, "rule": match[5], "rule_text": BORROW_RULES[match[5]], **maps,
            "selection": STUDY_SELECTION}


def _committed_provenance(folder, identifier: str) -> dict:
    """The record region_commitment wrote beside the map (``provenance/<id>.json``), as written, ``kind`` set."""
    path = folder / "provenance" / f"{identifier}.json"
    if not path.is_file():
        return {"kind": "committed", "region_layer_map": str(folder / "region_layer_map" / f"{identifier}.json"),
                "note": f"no provenance record at {path}: commit it again (`brainscore-plugins commit {identifier}`) "
                        f"to record one"}
    return {**committed_maps.read_json(path, identifier), "kind": "committed"}


def log_map_origin(name: str, provenance: dict) -> None:
    """One WARNING line when ``name`` is built with a map the study did not choose for it (its :func:`record`
    ``provenance``): borrowed or committed."""
    if provenance["kind"] == "borrowed":
        source = provenance["from"]
        _logger.warning("%s: region map borrowed from %s/%s/%s of the study's commitments.json (%s: %s), not "
                        "selected for this model", name, source["key"], source["data"], source["seed"],
                        provenance["rule"], provenance["rule_text"])
    elif provenance["kind"] == "committed":
        chosen = ", ".join(f"{region}: {benchmark.get('identifier') or benchmark.get('digest')}"
                           for region, benchmark in provenance.get("benchmarks", {}).items())
        detail = f"on {chosen} ({provenance.get('date', 'undated')})" if chosen else provenance.get("note", "")
        _logger.warning("%s: region map committed by `brainscore-plugins commit` %s", name, detail)


def selection_benchmarks(provenance: dict) -> dict[str, str]:
    """Region -> identifier of the benchmarks whose data chose the layers of a :func:`map_provenance` record ({} when
    no named benchmark did)."""
    if provenance["kind"] in ("published", "borrowed"):
        return dict(provenance["selection"]["benchmarks"])
    if provenance["kind"] == "committed":
        return {region: benchmark["identifier"] for region, benchmark in provenance.get("benchmarks", {}).items()
                if benchmark.get("identifier")}
    return {}


def benchmark_data(identifier: str) -> str:
    """The data set of a Brain-Score benchmark identifier: the part before the region (``MajajHong2015public`` of
    ``MajajHong2015public.IT-pls``), else before the metric (``Rajalingham2018public`` of
    ``Rajalingham2018public-i2n``)."""
    return identifier.split(".", 1)[0] if "." in identifier else identifier.rsplit("-", 1)[0]


def selection_overlap(name: str, benchmark: str, entry: catalog.Entry | None = None) -> str | None:
    """A one-line warning when scoring ``name`` on ``benchmark`` reuses data that chose its layers, else ``None``.

    Flagged: any benchmark on the data set (:func:`benchmark_data`) of a benchmark that chose a layer, not only that
    benchmark itself: ``MajajHong2015public.V4-pls`` and ``.IT-pls`` show the same images, so a map chosen on one is
    tuned to the images the other scores. Borrowed study maps count too (the data chose that architecture's layers).
    Not flagged: other data sets, including the private counterparts of the public ones (``MajajHong2015.IT-pls``:
    held-out images, Brain-Score's select-on-public, score-on-private split), and the behavioral readout of study
    maps (no data chose it). ``entry``: as in :func:`map_provenance`."""
    chosen = selection_benchmarks(map_provenance(name, entry))
    hits = [f"{region}: {b}" for region, b in chosen.items() if benchmark_data(b) == benchmark_data(benchmark)]
    if not hits:
        return None
    return (f"{benchmark} shares data with the benchmarks that chose the layers of {name} ({', '.join(hits)}): "
            f"selecting and scoring on the same data is optimistic; score on held-out data (e.g. the private "
            f"benchmark) for an unbiased estimate")
