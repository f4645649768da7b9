"""``commit``: choose a layer per region the way Brain-Score's ``LayerSelection`` does, in one forward pass.

Every target (:class:`~region_commitment.protocol.Target`) scores every candidate layer and gets its best one. A
neural target (:mod:`.targets`): PCA of the layer on the reference images (Brain-Score's ``LayerPCA``),
cross-validated PLS on the target's own splits, median Pearson r over neuroids, mean over splits, ceiled as
Brain-Score's ``explained_variance`` does (``r**2 / ceiling``). The behavioral target (:mod:`.behavior`): the layer
read out as Brain-Score's ``ProbabilitiesMapping`` does, scored by the benchmark's metric (``i2n``) and ceiled by the
benchmark; the layer chosen under the ``"behavior"`` key is the readout layer.

Per-layer scores are cached on disk as they are computed, so an interrupted run resumes at the next layer. The cache
key covers everything a score depends on: the activations model's identifier (which names its preprocessing), a
digest of its weights (:func:`.digests.weights`; a model without a torch module is keyed by its identifier alone,
and its provenance says so), the candidate layers, the image paths and a digest of the images' bytes
(:func:`.digests.files`), ``n_components``, the reference set and the targets' fingerprints. A run whose every
layer is cached runs no forward pass.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import atomic, brainscore_internals, digests, settings

from . import features as features_module
from .errors import CommitmentError
from .factories import load_target
from .layers import resolve_layers
from .reference import check_count, reference_images
from .protocol import LayerScore, LayerView
from .targets import DEFAULT_BENCHMARKS

REGIONS = ("V1", "V2", "V4", "IT")
BEHAVIOR = "behavior"


def check_identifier(identifier) -> None:
    """``identifier`` names files of :meth:`CommitmentResult.save`: a non-empty file name, no path separator, no
    ``..``.

    Raises:
        CommitmentError: another identifier.
    """
    if not isinstance(identifier, str) or not identifier or identifier == "." or ".." in identifier \
            or any(c in identifier for c in ("/", "\\", "\0")):
        raise CommitmentError(f"The identifier {identifier!r} is not a file name (it must be non-empty, without "
                              f"path separators or '..'); it names the files a commitment is saved to")


@dataclass
class CommitmentResult:
    region_layer_map: dict
    behavioral_readout_layer: str
    layers: list
    scores: list[LayerScore] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)  # what chose the map: benchmarks, reference set, layers, versions

    def chosen(self, region: str) -> str:
        """The layer committed to ``region`` (``"behavior"``: the readout layer)."""
        return self.behavioral_readout_layer if region == BEHAVIOR else self.region_layer_map[region]

    def best_margin(self, region: str) -> tuple[float, float]:
        """(raw score of the chosen layer minus the runner-up's, the chosen layer's error over splits)."""
        rows = sorted((r for r in self.scores if r.region == region), key=lambda r: -r.ceiled)
        return rows[0].raw - rows[1].raw, rows[0].error

    def save(self, plugin_dir: str | Path, identifier: str) -> dict[str, Path]:
        """Write ``region_layer_map/<id>.json`` (Brain-Score's format), the readout, the score table and plot.

        Raises:
            CommitmentError: ``identifier`` is not a file name (:func:`check_identifier`), or a file would land
                outside ``plugin_dir`` (a subfolder that links elsewhere); nothing is written then.
        """
        check_identifier(identifier)
        plugin_dir = Path(plugin_dir)
        paths = {"region_layer_map": plugin_dir / "region_layer_map" / f"{identifier}.json",
                 "behavioral_readout": plugin_dir / "behavioral_readout" / f"{identifier}.json",
                 "scores": plugin_dir / "layer_scores" / f"{identifier}.csv",
                 "provenance": plugin_dir / "provenance" / f"{identifier}.json",
                 "plot": plugin_dir / "layer_scores" / f"{identifier}.png"}
        root = plugin_dir.resolve()
        outside = [str(path) for path in paths.values() if not path.resolve().is_relative_to(root)]
        if outside:
            raise CommitmentError(f"{outside[0]} resolves outside {plugin_dir}; refusing to write there")
        for kind, text in [("region_layer_map", json.dumps(self.region_layer_map, indent=2) + "\n"),
                           ("behavioral_readout", json.dumps({"behavioral_readout_layer":
                                                              self.behavioral_readout_layer}) + "\n"),
                           ("scores", self.csv()), ("provenance", json.dumps(self.provenance, indent=2) + "\n")]:
            atomic.write_text(paths[kind], text)
        self.plot(paths["plot"], title=identifier)
        return paths

    def csv(self) -> str:
        lines = ["region,layer,depth,raw,error,ceiled,chosen"]
        for r in self.scores:
            chosen = int(self.chosen(r.region) == r.layer)
            lines.append(f"{r.region},{r.layer},{r.depth},{r.raw:.6f},{r.error:.6f},{r.ceiled:.6f},{chosen}")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path, title: str = "") -> Path:
        from matplotlib.figure import Figure  # no pyplot: the user's backend and figures are left alone
        fig = Figure(figsize=(max(6, 0.35 * len(self.layers)), 4))
        ax = fig.subplots()
        for region in dict.fromkeys(r.region for r in self.scores):
            rows = sorted((r for r in self.scores if r.region == region), key=lambda r: r.depth)
            line, = ax.plot([r.depth for r in rows], [r.ceiled for r in rows], marker="o", label=region)
            best = next(r for r in rows if r.layer == self.chosen(region))
            ax.plot(best.depth, best.ceiled, marker="*", markersize=16, color=line.get_color())
        ax.set_xticks(range(len(self.layers)), self.layers, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("ceiled score (neural: r² / ceiling)")
        ax.set_title(f"{title} layer commitment (★ chosen)")
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=120)
        return path


def _folder_name(identifier) -> str:
    """The model's folder in the cache: its identifier, characters that could leave the cache replaced."""
    return re.sub(r"[^\w.-]|\.\.", "_", str(identifier)) or "_"


def _scorable(activations_model, layers: list[str], probe_path: str, cache: Path) -> dict[str, int] | None:
    """Features per image of each layer that can be scored; layers whose output is not a tensor or that the forward
    pass never calls are dropped with a warning. The probe's widths are cached in ``cache``. ``None`` for a model
    without a torch module to probe."""
    if brainscore_internals.torch_module(activations_model) is None:
        return None
    if cache.exists():
        widths = json.loads(cache.read_text())
    else:
        probed = features_module.probe_widths(activations_model, layers, probe_path)
        widths = {layer: probed.get(layer) for layer in layers}
        atomic.write_text(cache, json.dumps(widths))
    dropped = [layer for layer in layers if widths[layer] is None]
    if dropped:
        warnings.warn(f"{len(dropped)} candidate layer(s) give no tensor output and are not scored: "
                      f"{', '.join(dropped[:8])}{' ...' if len(dropped) > 8 else ''}")
    return {layer: widths[layer] for layer in layers if widths[layer] is not None}


def _provenance(benchmarks: dict, reference, n_components: int, layers: list[str], mode: str,
                weights: str | None, images: dict) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return {
        "kind": "committed",
        "benchmarks": benchmarks,
        "reference": reference.provenance if reference is not None else None,
        "n_components": n_components,
        "layers": {"mode": mode, "candidates": layers},
        "weights": {"digest": weights, "of": "the torch module's parameters and buffers"} if weights else
                   {"digest": None, "of": "nothing: the model has no torch module; cached by its identifier alone"},
        "images": images,
        "versions": {p: installed(p) for p in ("brainscore-plugins", "brainscore_vision", "torch")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def commit(activations_model, layers: list[str] | str | None = None, benchmarks: dict | None = None, *,
           reference: str | Path | None = None, n_components: int = 1000, behavioral_readout_layer: str | None = None,
           cache_dir: str | Path | None = None, keep_features: bool = False, disk_budget: int | None = None,
           progress: bool = True) -> CommitmentResult:
    """Commit candidate ``layers`` to the regions of ``benchmarks``.

    ``layers``: ``None`` / ``"default"`` (the block-output rule of :mod:`.layers`), ``"study"`` (every named module,
    the scaling-primate-vvs study's search space) or a list of names. ``benchmarks`` maps region -> benchmark
    identifier, benchmark object (:func:`~region_commitment.factories.load_target`) or any
    :class:`~region_commitment.protocol.Target` (:class:`RegionTarget`, ...), and ``"behavior"`` -> a
    Rajalingham2018-style benchmark or :class:`BehaviorTarget` (default: the public benchmarks of Brain-Score's
    ``ModelCommitment``, :data:`DEFAULT_BENCHMARKS`). ``reference``: the PCA reference images (:mod:`.reference`:
    default Brain-Score's own ImageNet images, a folder, ``"brainscore"`` or ``"builtin"``), loaded where a target
    needs them. A given ``behavioral_readout_layer`` is kept as is (the ``"behavior"`` benchmark is then not
    scored); without one the readout is the layer chosen for ``"behavior"``, or, with no such key, the last candidate
    layer (Brain-Score's ``ModelCommitment`` default). Features are streamed to ``cache_dir``; when all candidate
    layers' features exceed ``disk_budget`` bytes (default: 80% of the free disk there), the layers are extracted
    and scored in groups, one forward pass per group.

    Every input is checked before the forward pass; a failed run leaves no partial feature files (nor, unless
    ``keep_features``, complete ones) behind.

    Raises:
        CommitmentError: unknown, duplicate, empty or unscorable candidate layers, ``n_components`` outside 1 to
            the number of reference images, or every layer scoring NaN on a target.
        BenchmarkUnavailableError, InvalidTargetError: a benchmark that cannot be loaded or make a target.
        DiskFullError: the disk filled up while features were written (their files are removed).
        FileNotFoundError, OSError, FloatingPointError: missing images, too little disk, NaN activations.
    """
    check_count(n_components)  # the bound of the reference set itself is checked where it is loaded
    layers, mode = resolve_layers(brainscore_internals.torch_module(activations_model), layers)
    features_module.check_layers(activations_model, layers)
    if behavioral_readout_layer is not None:
        features_module.check_layers(activations_model, [behavioral_readout_layer])
    benchmarks = dict(DEFAULT_BENCHMARKS if benchmarks is None else benchmarks)
    if behavioral_readout_layer is not None:
        benchmarks.pop(BEHAVIOR, None)
    targets = {region: load_target(region, b) for region, b in benchmarks.items()}
    if not targets:
        raise CommitmentError("No benchmark to commit on (a given behavioral_readout_layer leaves out 'behavior')")
    # those on the reference PCA first: the order of the score rows and of the feature rows (and so of the cache key)
    scored = sorted(targets.items(), key=lambda item: not item[1].needs_reference)
    projected = list(dict.fromkeys(p for _, t in scored if t.needs_reference for p in t.image_paths()))
    cache_dir = Path(cache_dir) if cache_dir else settings.cache_dir()
    needs_reference = any(t.needs_reference for t in targets.values())
    reference_set = reference_images(reference, cache_dir, n=n_components) if needs_reference else None
    reference_paths = [str(p) for p in reference_set.paths] if needs_reference else []
    paths = list(dict.fromkeys(reference_paths + [p for _, t in scored for p in t.image_paths()]))
    weights = digests.weights(activations_model)
    images = {"digest": digests.files(paths), "of": "the bytes of the image files", "n": len(paths)}
    recorded = {region: {"identifier": target.identifier, "digest": target.fingerprint()}
                for region, target in targets.items()}  # computed once: the cache key and the provenance
    key = json.dumps([activations_model.identifier, weights, layers, paths, images["digest"], n_components,
                      reference_set.provenance if reference_set is not None else None, recorded])
    run_dir = cache_dir / _folder_name(activations_model.identifier) / hashlib.sha256(key.encode()).hexdigest()[:16]
    widths = _scorable(activations_model, layers, paths[0], run_dir / "widths.json")
    layers = list(widths) if widths is not None else layers
    if not layers:
        raise CommitmentError("None of the candidate layers gives a tensor output to score")
    provenance = _provenance(recorded, reference_set, n_components, layers, mode, weights, images)

    pending = [layer for layer in layers if not (run_dir / "scores" / f"{layer}.json").exists()]
    budget = disk_budget if disk_budget is not None else int(0.8 * features_module.free_bytes(run_dir))
    groups = (features_module.plan_groups({layer: widths[layer] for layer in pending}, len(paths), budget)
              if widths is not None and pending else [pending])
    depth = {layer: i for i, layer in enumerate(layers)}

    with tqdm(total=len(pending), desc="layers (PCA + PLS, readout)", disable=not progress) as bar:
        for i, group in enumerate(g for g in groups if g):
            batch = features_module.batch_size_for(sum(widths[n] for n in group)) if widths is not None else None
            features_dir = run_dir / "features" / (f"group-{i}" if len(groups) > 1 else "all")
            try:  # a failed extraction removes its own partial files; a failed run, the features it kept
                store = features_module.extract(activations_model, group, paths, features_dir, batch_size=batch,
                                                progress=progress)
                for layer in group:
                    view = LayerView(store, layer, reference_paths, projected, n_components)  # one PCA, shared
                    rows = [LayerScore(region, layer, depth[layer], *target.score(view)) for region, target in scored]
                    atomic.write_text(run_dir / "scores" / f"{layer}.json",
                                      json.dumps([row.as_dict() for row in rows]))
                    bar.update(1)
            finally:
                if not keep_features or len(groups) > 1:
                    shutil.rmtree(features_dir, ignore_errors=True)
    scores = [LayerScore.from_dict(row) for layer in layers
              for row in json.loads((run_dir / "scores" / f"{layer}.json").read_text())]

    def best(region):  # the first of ties; NaN scores skipped, as xarray's argmax in Brain-Score's LayerSelection
        rows = [r for r in scores if r.region == region and not np.isnan(r.ceiled)]
        if not rows:
            raise CommitmentError(f"Every candidate layer scored NaN on {targets[region].identifier}; check its "
                                  f"responses")
        return max(rows, key=lambda r: r.ceiled).layer

    return CommitmentResult(region_layer_map={region: best(region) for region in targets if region != BEHAVIOR},
                            behavioral_readout_layer=behavioral_readout_layer or (best(BEHAVIOR) if BEHAVIOR in targets
                                                                                  else layers[-1]),
                            layers=layers, scores=scores, provenance=provenance)
