"""The Algonauts 2023 challenge (NSD fMRI) as Brain-Score benchmarks.

Per subject: the challenge's training images and responses (:mod:`.data`), split by the challenge development kit's
recipe (seed 5, 90 % fit / 10 % held out; the challenge's own test responses are not public). Two modes:

* ``-ridge``: the model's features -> ridge regression (himalaya; the ScalingVisionEncoder grid: 30 alphas
  ``logspace(0, 15)``, 8-fold CV, per vertex) fitted on the 90 %, scored on the 10 %. With a region
  (``algonauts2023.subj01.V4-ridge``), the model's committed layer for that region predicts that region's vertices
  (V1: prf-visualrois V1v+V1d, V2: V2v+V2d, V4: hV4, IT: streams ventral). Without one (``algonauts2023.subj01-ridge``)
  every challenge vertex is predicted by the ScalingVisionEncoder search: every candidate layer (:func:`search_layers`)
  x max-pool kernel 1..16, the best cell per vertex chosen by its CV score on the 90 % only.
* ``-direct``: a model that predicts the fMRI itself (``predict_fmri``, e.g. ``grouplin_phase1-fmri``) is scored on
  the 10 % as it is, nothing fitted.

Metric: the challenge's, per vertex (:func:`.metric.challenge_scores`): noise-normalised R^2 where noise ceilings are
supplied (``training_split/noise_ceiling/``), else Pearson r^2 (named in ``score.attrs['metric']``); the score is
the mean over the vertices (per subject) and over subjects (``algonauts2023-*``, with the standard error across
subjects; one subject's error is the standard error across its vertices). ``score.attrs['roi_scores']`` holds the
per-ROI table (streams, prf-visualrois, floc-*), :func:`plot_rois` draws it.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from brainscore_core.metrics import Score
from brainscore_vision.benchmarks import BenchmarkBase

from region_commitment import brainscore_internals, features

from .. import settings
from ..architectures.grouplin import GROUP_VERTICES
from ..errors import AlgonautsDataError, BrainscorePluginsError
from . import encoding, metric
from .data import (FSAVERAGE_VERTICES, HEMISPHERES, SUBJECTS, Subject, load_subject, read_fsaverage_mask, resolve_root,
                   split)

REGIONS = {"V1": ("prf-visualrois", ("V1v", "V1d")), "V2": ("prf-visualrois", ("V2v", "V2d")),
           "V4": ("prf-visualrois", ("hV4",)), "IT": ("streams", ("ventral",))}
MODES = ("ridge", "direct")
VERSION = 1
BIBTEX = """@article{gifford2023algonauts,
  title={The Algonauts Project 2023 Challenge: How the Human Brain Makes Sense of Natural Scenes},
  author={Gifford, Alessandro T and Lahner, Benjamin and Saba-Sadiya, Sari and Vilas, Martina G and Lascelles, Alex
          and Oliva, Aude and Kay, Kendrick and Roig, Gemma and Cichy, Radoslaw M},
  journal={arXiv preprint arXiv:2301.03198},
  year={2023}
}"""


class ModelUnsuitableError(BrainscorePluginsError, TypeError):
    """The model cannot be scored in the benchmark's mode (no features to read, or no fMRI predictions)."""


def identifier(subject: str | None = None, region: str | None = None, mode: str = "ridge") -> str:
    return ".".join(["algonauts2023", *filter(None, (subject, region))]) + f"-{mode}"


def identifiers() -> list[str]:
    """Every registered identifier: per subject and the 8-subject mean; ridge for all vertices and per region;
    direct for all vertices."""
    return [identifier(subject, region, mode) for mode in MODES for subject in (None, *SUBJECTS)
            for region in ((None, *REGIONS) if mode == "ridge" else (None,))]


def parse(benchmark_identifier: str) -> tuple[tuple[str, ...], str | None, str]:
    """(subjects, region, mode) of a registered identifier."""
    if benchmark_identifier not in identifiers():
        raise ValueError(f"Unknown Algonauts 2023 benchmark {benchmark_identifier!r}; known: e.g. "
                         f"{identifier('subj01')}, {identifier(region='V4')}, {identifier(mode='direct')}")
    name, mode = benchmark_identifier.rsplit("-", 1)
    parts = name.split(".")[1:]
    subjects = tuple(p for p in parts if p in SUBJECTS) or SUBJECTS
    region = next((p for p in parts if p in REGIONS), None)
    return subjects, region, mode


def region_vertices(subject: Subject, hemisphere: str, region: str | None) -> np.ndarray:
    """The hemisphere's vertex indices of ``region`` (every vertex for ``None``)."""
    if region is None:
        return np.arange(subject.n_vertices(hemisphere))
    group, names = REGIONS[region]
    return np.sort(np.concatenate([subject.rois(hemisphere)[group][name] for name in names]))


def group_space(root: Path) -> np.ndarray:
    """fsaverage mask (lh then rh) of the challenge's group space: the union of every subject's vertices.

    Raises:
        AlgonautsDataError: the subjects present do not make up the 39,548 group vertices.
    """
    masks = []
    for name in SUBJECTS:
        folder = root / name / "roi_masks"
        if (folder / "lh.all-vertices_fsaverage_space.npy").is_file():
            masks.append(np.concatenate([read_fsaverage_mask(folder / f"{h}.all-vertices_fsaverage_space.npy")
                                         for h in HEMISPHERES]))
    union = np.any(masks, axis=0) if masks else np.zeros(2 * FSAVERAGE_VERTICES, bool)
    if union.sum() != GROUP_VERTICES:
        raise AlgonautsDataError(
            f"The roi_masks of the subjects in {root} cover {int(union.sum())} fsaverage vertices, not the "
            f"{GROUP_VERTICES} of the challenge's group space that fMRI predictors output; the -direct benchmarks "
            f"need every subject's roi_masks (subj01 ... subj08) in the data folder")
    return union


def subject_vertices(predictions: np.ndarray, subject: Subject, group: np.ndarray) -> dict[str, np.ndarray]:
    """Group-space predictions -> ``{hemisphere: (n, subject's vertices)}``."""
    mask = np.concatenate([subject.fsaverage_mask(h) for h in HEMISPHERES])
    own = predictions[:, mask[group]]
    return dict(zip(HEMISPHERES, np.split(own, [subject.n_vertices("lh")], axis=1)))


def search_layers(candidate) -> list[str]:
    """The layers the whole-cortex search runs over: a catalogued model's candidate layers (its committed
    ``ModelCommitment`` lists only the committed ones), else the model's ``layers`` (Brain-Score's candidates)."""
    from .. import candidates, catalog
    from ..errors import ModelNotFoundError
    try:
        entry = catalog.resolve(candidate.identifier)
    except ModelNotFoundError:
        return list(candidate.layers)
    return candidates.candidate_layers(entry, brainscore_internals.torch_module(candidate.activations_model))


def layer_grids(activations_model, layers: list[str], path: str) -> dict[str, encoding.LayerGrid]:
    """Each layer's output shape as a :class:`.encoding.LayerGrid`, from one image: ``(N, T, C)`` token grids (leading
    tokens beyond a square grid, such as a class token, are the prefix), ``(N, C, H, W)`` maps, anything else flat."""
    model = brainscore_internals.torch_module(activations_model)
    shapes, modules = {}, dict(model.named_modules())
    handles = [modules[layer].register_forward_hook(
        lambda module, inputs, output, layer=layer: shapes.__setitem__(layer, tuple(output.shape)))
        for layer in layers]
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.eval()(torch.from_numpy(np.asarray(brainscore_internals.preprocess(activations_model)([path])))
                         .to(device))
    finally:
        for handle in handles:
            handle.remove()
    grids = {}
    for layer in layers:
        shape = shapes[layer][1:]
        side = int(np.sqrt(shape[0])) if len(shape) == 2 else 0
        if len(shape) == 3:
            grids[layer] = encoding.LayerGrid("channels", shape[0], shape[1], shape[2])
        elif side > 1:
            grids[layer] = encoding.LayerGrid("tokens", shape[1], side, side, prefix=shape[0] - side * side)
        else:
            grids[layer] = encoding.LayerGrid("flat", int(np.prod(shape)), 1, 1)
    return grids


class Algonauts2023(BenchmarkBase):
    """One registered identifier (:func:`identifiers`); ``data_dir`` else ``$BRAINSCORE_PLUGINS_ALGONAUTS_DIR``."""

    def __init__(self, benchmark_identifier: str, data_dir=None, kernels=encoding.KERNELS, alphas=encoding.ALPHAS,
                 folds: int = encoding.N_FOLDS, progress: bool = True, keep_features: bool = False):
        self.subjects, self.region, self.mode = parse(benchmark_identifier)
        super().__init__(identifier=benchmark_identifier, ceiling_func=None, version=VERSION, parent="algonauts2023",
                         bibtex=BIBTEX)
        self.data_dir, self.kernels, self.alphas, self.folds = data_dir, kernels, alphas, folds
        self.progress, self.keep_features = progress, keep_features

    @property
    def ceiling(self) -> Score:
        """1: the noise-normalised metric is already relative to the noise ceiling (NaN for plain Pearson r^2)."""
        root = resolve_root(self.data_dir)
        normalized = all(load_subject(s, root).noise_ceiling(h) is not None for s in self.subjects for h in HEMISPHERES)
        return Score(1.0 if normalized else np.nan)

    def __call__(self, candidate) -> Score:
        """The candidate's score (see the module docstring); the data are checked before anything is computed."""
        root = resolve_root(self.data_dir)
        subjects = [load_subject(name, root) for name in self.subjects]
        if self.mode == "direct" and not hasattr(candidate, "predict_fmri"):
            raise ModelUnsuitableError(f"{getattr(candidate, 'identifier', candidate)} predicts no fMRI (no "
                                       f"predict_fmri); score it on {self.identifier.replace('-direct', '-ridge')}")
        group = group_space(root) if self.mode == "direct" else None
        responses = [{h: subject.fmri(h) for h in HEMISPHERES} for subject in subjects]  # every subject checked first
        results = [self._subject(candidate, subject, fmri, group) for subject, fmri in zip(subjects, responses)]
        values = np.array([r["score"] for r in results])
        score = Score(values.mean())
        score.attrs["error"] = (values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1
                                else results[0]["vertex_sem"])
        score.attrs["ceiling"] = self.ceiling
        score.attrs["raw"] = Score(values, coords={"subject": list(self.subjects)}, dims=["subject"])
        score.attrs["metric"] = results[0]["metric"]
        score.attrs["roi_scores"] = pd.concat([r["rois"] for r in results], ignore_index=True)
        if self.mode == "ridge":
            score.attrs["search"] = pd.concat([r["cells"] for r in results], ignore_index=True)
        score.attrs["split"] = "challenge dev kit: RandomState(5) shuffle, first 90 % fit, last 10 % scored"
        return score

    def _subject(self, candidate, subject: Subject, fmri: dict, group: np.ndarray | None) -> dict:
        train, test = split(len(subject.images))
        vertices = {h: region_vertices(subject, h, self.region) for h in HEMISPHERES}
        ceilings = {h: subject.noise_ceiling(h) for h in HEMISPHERES}
        if self.mode == "direct":
            paths = [str(subject.images[i]) for i in test]
            predicted = subject_vertices(candidate.predict_fmri(paths, subject.name), subject, group)
            predictions = {h: predicted[h][:, vertices[h]] for h in HEMISPHERES}
            cells = None
        else:
            responses = np.concatenate([np.asarray(fmri[h][:, vertices[h]]) for h in HEMISPHERES], axis=1)
            combined, cells = self._ridge(candidate, subject, responses, train, test)
            predictions = dict(zip(HEMISPHERES, np.split(combined, [len(vertices["lh"])], axis=1)))
        per_vertex = {h: metric.challenge_scores(predictions[h], np.asarray(fmri[h][test][:, vertices[h]]),
                                                 None if ceilings[h] is None else ceilings[h][vertices[h]])
                      for h in HEMISPHERES}
        everything = np.concatenate([per_vertex[h] for h in HEMISPHERES])
        rois = {h: {g: {r: np.flatnonzero(np.isin(vertices[h], idx)) for r, idx in roi.items()}
                    for g, roi in subject.rois(h).items()} for h in HEMISPHERES}
        return {"score": everything.mean(), "vertex_sem": everything.std(ddof=1) / np.sqrt(len(everything)),
                "metric": metric.metric_name(ceilings["lh"]), "cells": cells,
                "rois": metric.roi_table(per_vertex, rois, subject=subject.name)}

    def _ridge(self, candidate, subject: Subject, responses: np.ndarray, train, test):
        activations_model = getattr(candidate, "activations_model", None)
        if activations_model is None or brainscore_internals.torch_module(activations_model) is None:
            raise ModelUnsuitableError(
                f"{getattr(candidate, 'identifier', candidate)} exposes no PyTorch activations model (as Brain-Score's "
                f"ModelCommitment does), so its layers cannot be read for {self.identifier}")
        if self.region:
            layers, kernels = [candidate.layer_model.region_layer_map[self.region]], None
        else:
            layers, kernels = search_layers(candidate), self.kernels
        paths = [str(p) for p in subject.images]
        grids = layer_grids(activations_model, layers, paths[0])
        folder = self._features_folder(activations_model, subject)
        widths = {layer: grid.row_width for layer, grid in grids.items()}
        best = None
        try:
            for group in features.plan_groups(widths, len(paths), int(0.8 * features.free_bytes(folder))):
                store = features.extract(activations_model, group, paths, folder / f"layers-{group[0]}",
                                         progress=self.progress)
                result = encoding.search(store, {layer: grids[layer] for layer in group}, responses,
                                         store.rows(np.array(paths)[train]), store.rows(np.array(paths)[test]),
                                         kernels=kernels, alphas=self.alphas, folds=self.folds,
                                         progress=self.progress)
                best = result if best is None else _better(best, result)
                if not self.keep_features:
                    shutil.rmtree(folder / f"layers-{group[0]}", ignore_errors=True)
        finally:
            if not self.keep_features:
                shutil.rmtree(folder, ignore_errors=True)
        return best.predictions, best.cells.assign(subject=subject.name)

    def _features_folder(self, activations_model, subject: Subject) -> Path:
        key = hashlib.sha256("\n".join([activations_model.identifier, str(subject.directory.resolve()),
                                        *(f"{p.name}:{p.stat().st_size}" for p in subject.images)]).encode())
        return settings.cache_dir() / "algonauts2023" / activations_model.identifier / subject.name / \
            key.hexdigest()[:16]


def _better(a: encoding.SearchResult, b: encoding.SearchResult) -> encoding.SearchResult:
    """Per vertex the better of two searches over different layers (cells' vertex counts recounted)."""
    take = b.cv_scores > a.cv_scores
    layers, kernels = np.where(take, b.layers, a.layers), np.where(take, b.kernels, a.kernels)
    cells = pd.concat([a.cells, b.cells], ignore_index=True)
    won = pd.Series(list(zip(layers, kernels))).value_counts()
    cells["vertices"] = [int(won.get((layer, kernel), 0)) for layer, kernel in zip(cells.layer, cells.kernel)]
    return encoding.SearchResult(layers=layers, kernels=kernels, cv_scores=np.where(take, b.cv_scores, a.cv_scores),
                                 predictions=np.where(take, b.predictions, a.predictions), cells=cells)


def plot_rois(score: Score, ax=None):
    """Per-ROI bar chart of a score's ``roi_scores`` (both hemispheres; mean over subjects)."""
    table = score.attrs["roi_scores"]
    both = table[table.hemisphere == "both"].groupby(["group", "roi"], sort=False, as_index=False)
    return metric.plot_roi_table(both.agg(n_vertices=("n_vertices", "sum"), score=("score", "mean"))
                                 .assign(hemisphere="both"), ax=ax)
