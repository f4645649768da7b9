"""``commit``: choose a layer per region the way Brain-Score's ``LayerSelection`` does, in one forward pass.

For every region target and candidate layer: PCA of the layer on the reference images (Brain-Score's ``LayerPCA``),
cross-validated PLS on the target's own splits, median Pearson r over neuroids, mean over splits, ceiled as
Brain-Score's ``explained_variance`` does (``r**2 / ceiling``); the region gets the best layer. For behavior, every
candidate layer is read out as Brain-Score's ``ProbabilitiesMapping`` does and scored by the behavioral benchmark's
metric (``i2n``), ceiled by the benchmark (:mod:`.behavior`); the best is the readout layer. Per-layer scores are
cached on disk as they are computed, so an interrupted run resumes at the next layer.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from brainscore_plugins import atomic

from . import features as features_module
from .behavior import BehaviorTarget, from_behavioral_benchmark, readout_score
from .layers import candidate_layers
from .pca import project
from .pls import cross_validated_score
from .reference import reference_images
from .targets import DEFAULT_BENCHMARKS, RegionTarget, from_benchmark

REGIONS = ("V1", "V2", "V4", "IT")
BEHAVIOR = "behavior"


@dataclass
class CommitmentResult:
    region_layer_map: dict
    behavioral_readout_layer: str
    layers: list
    scores: list = field(default_factory=list)  # dicts: region, layer, depth, raw, error, ceiled

    def chosen(self, region: str) -> str:
        """The layer committed to ``region`` (``"behavior"``: the readout layer)."""
        return self.behavioral_readout_layer if region == BEHAVIOR else self.region_layer_map[region]

    def best_margin(self, region: str) -> tuple[float, float]:
        """(raw score of the chosen layer minus the runner-up's, the chosen layer's error over splits)."""
        rows = sorted((r for r in self.scores if r["region"] == region), key=lambda r: -r["ceiled"])
        return rows[0]["raw"] - rows[1]["raw"], rows[0]["error"]

    def save(self, plugin_dir: str | Path, identifier: str) -> dict[str, Path]:
        """Write ``region_layer_map/<id>.json`` (Brain-Score's format), the readout, the score table and plot."""
        plugin_dir = Path(plugin_dir)
        written = {
            "region_layer_map": atomic.write_text(plugin_dir / "region_layer_map" / f"{identifier}.json",
                                                  json.dumps(self.region_layer_map, indent=2) + "\n"),
            "behavioral_readout": atomic.write_text(plugin_dir / "behavioral_readout" / f"{identifier}.json",
                                                    json.dumps({"behavioral_readout_layer":
                                                                self.behavioral_readout_layer}) + "\n"),
            "scores": atomic.write_text(plugin_dir / "layer_scores" / f"{identifier}.csv", self.csv()),
        }
        written["plot"] = self.plot(plugin_dir / "layer_scores" / f"{identifier}.png", title=identifier)
        return written

    def csv(self) -> str:
        lines = ["region,layer,depth,raw,error,ceiled,chosen"]
        for r in self.scores:
            chosen = int(self.chosen(r["region"]) == r["layer"])
            lines.append(f"{r['region']},{r['layer']},{r['depth']},{r['raw']:.6f},{r['error']:.6f},"
                         f"{r['ceiled']:.6f},{chosen}")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path, title: str = "") -> Path:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(self.layers)), 4))
        for region in dict.fromkeys(r["region"] for r in self.scores):
            rows = sorted((r for r in self.scores if r["region"] == region), key=lambda r: r["depth"])
            line, = ax.plot([r["depth"] for r in rows], [r["ceiled"] for r in rows], marker="o", label=region)
            best = next(r for r in rows if r["layer"] == self.chosen(region))
            ax.plot(best["depth"], best["ceiled"], marker="*", markersize=16, color=line.get_color())
        ax.set_xticks(range(len(self.layers)), self.layers, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel("ceiled score (neural: r² / ceiling)")
        ax.set_title(f"{title} layer commitment (★ chosen)")
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        return path


def load_target(region: str, benchmark) -> RegionTarget | BehaviorTarget:
    """A region's (or ``"behavior"``'s) target from a benchmark identifier or object, or a target as it is."""
    if isinstance(benchmark, (RegionTarget, BehaviorTarget)):
        return benchmark
    return from_behavioral_benchmark(benchmark) if region == BEHAVIOR else from_benchmark(benchmark, region=region)


def _fingerprint(target) -> list:
    """What identifies a target's data in the cache key: its identifier and a digest of its values."""
    if isinstance(target, BehaviorTarget):
        values = "\n".join(map(str, [*target.assembly.values, *target.assembly["stimulus_id"].values,
                                      *target.fitting_stimuli["image_label"].values])).encode()
    else:
        splits = np.concatenate([np.concatenate(split) for split in target.splits])
        values = target.responses.tobytes() + splits.tobytes()
    return [target.identifier, hashlib.sha256(values).hexdigest()]


def _default_cache() -> Path:
    from brainscore_plugins.hub import cache_dir
    return cache_dir() / "region_commitment"


def commit(activations_model, layers: list[str] | None = None, benchmarks: dict | None = None, *,
           reference: str | Path | None = None, n_components: int = 1000, behavioral_readout_layer: str | None = None,
           cache_dir: str | Path | None = None, keep_features: bool = False, progress: bool = True
           ) -> CommitmentResult:
    """Commit ``layers`` (default: the block-output rule of :mod:`.layers`) to the regions of ``benchmarks``.

    ``benchmarks`` maps region -> benchmark identifier, ``NeuralBenchmark`` or :class:`RegionTarget`, and
    ``"behavior"`` -> a Rajalingham2018-style benchmark or :class:`BehaviorTarget` (default: the public benchmarks
    of Brain-Score's ``ModelCommitment``, :data:`DEFAULT_BENCHMARKS`). ``reference`` is a folder of PCA reference
    images (the first ``n_components`` are used, as Brain-Score uses ``n_components`` ImageNet images); default: the
    built-in offline set. A given ``behavioral_readout_layer`` is kept as is; without one the readout is selected
    on the behavioral benchmark, or, with none, is the last candidate layer (Brain-Score's ``ModelCommitment``
    default).
    """
    layers = list(layers) if layers is not None else candidate_layers(activations_model._model)
    features_module.check_layers(activations_model, layers)
    if behavioral_readout_layer is not None:
        features_module.check_layers(activations_model, [behavioral_readout_layer])
    benchmarks = dict(DEFAULT_BENCHMARKS if benchmarks is None else benchmarks)
    if behavioral_readout_layer is not None:
        benchmarks.pop(BEHAVIOR, None)
    targets = {region: load_target(region, b) for region, b in benchmarks.items()}
    neural = {region: t for region, t in targets.items() if region != BEHAVIOR}
    behavior = targets.get(BEHAVIOR)
    cache_dir = Path(cache_dir) if cache_dir else _default_cache()
    reference_paths = [str(p) for p in reference_images(reference, cache_dir, n=n_components)] if neural else []
    stimulus_paths = {region: [str(t.stimulus_set.get_stimulus(s)) for s in t.stimulus_ids]
                      for region, t in neural.items()}
    all_stimuli = list(dict.fromkeys(p for paths in stimulus_paths.values() for p in paths))
    fitting_paths, test_paths = behavior.paths() if behavior else ([], [])
    paths = list(dict.fromkeys(reference_paths + all_stimuli + fitting_paths + test_paths))

    key = json.dumps([activations_model.identifier, layers, paths, n_components,
                      {region: _fingerprint(t) for region, t in targets.items()}])
    run_dir = cache_dir / str(activations_model.identifier) / hashlib.sha256(key.encode()).hexdigest()[:16]
    store = features_module.extract(activations_model, layers, paths, run_dir / "features", progress=progress)
    reference_rows, stimulus_rows = store.rows(reference_paths), store.rows(all_stimuli)
    row_in_projection = {p: i for i, p in enumerate(all_stimuli)}

    scores = []
    for depth, layer in enumerate(tqdm(layers, desc="layers (PCA + PLS, readout)", disable=not progress)):
        cached = run_dir / "scores" / f"{layer}.json"
        if cached.exists():
            scores += json.loads(cached.read_text())
            continue
        layer_scores = []
        if neural:
            projected = project(store.layer(layer), reference_rows, stimulus_rows, n_components)
            for region, target in neural.items():
                rows = [row_in_projection[p] for p in stimulus_paths[region]]
                raw, error = cross_validated_score(projected[rows], target.responses, target.splits,
                                                   target.n_components)
                layer_scores.append({"region": region, "layer": layer, "depth": depth, "raw": raw, "error": error,
                                     "ceiled": raw ** 2 / target.ceiling})
        if behavior:
            raw, error, ceiled = readout_score(store.layer(layer), store.rows(fitting_paths), store.rows(test_paths),
                                               behavior)
            layer_scores.append({"region": BEHAVIOR, "layer": layer, "depth": depth, "raw": raw, "error": error,
                                 "ceiled": ceiled})
        atomic.write_text(cached, json.dumps(layer_scores))
        scores += layer_scores
    if not keep_features:
        shutil.rmtree(run_dir / "features", ignore_errors=True)

    def best(region):
        return max((r for r in scores if r["region"] == region), key=lambda r: r["ceiled"])["layer"]  # first of ties

    return CommitmentResult(region_layer_map={region: best(region) for region in neural},
                            behavioral_readout_layer=behavioral_readout_layer or (best(BEHAVIOR) if behavior
                                                                                  else layers[-1]),
                            layers=layers, scores=scores)
