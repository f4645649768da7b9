"""The Algonauts 2023 challenge (NSD fMRI) as Brain-Score benchmarks.

Identifiers: ``algonauts2023[.<subject>][.<region>][-<split>][-r2]-<mode>`` (:func:`identifiers`, :class:`Spec`).

Splits (of one subject's images; "scored" = the images the score is computed on):

* none (``algonauts2023.subj01-ridge``): the development kit's split of the training images (:func:`.splits.devkit`,
  seed 5): fit on 90 %, score on the held-out 10 %.
* ``test`` (``algonauts2023.subj01-test-ridge``): the challenge's official test split, when the user has its
  responses and noise ceilings (``test_split/test_fmri/``, ``test_split/noise_ceiling/`` as the organisers' preparation
  writes them): fit on every training image, score the test images. The challenge's own score.
* ``lane2023val`` (``algonauts2023-lane2023val-direct``, direct mode only): GroupLin's validation split
  (:func:`.splits.lane2023`), on which its authors chose their checkpoints, scored with their metric (median R^2):
  named for what it is, it reproduces their table rather than measuring generalisation.

Metric (:mod:`.metric`), per vertex: the challenge's noise-normalised r^2, with the organisers' noise ceiling (the
test split's file; for the held-out split computed for exactly the scored images from NSD's ncsnr and their
repetition counts, :mod:`.noise_ceiling`, which ``brainscore-plugins noise-ceiling`` prepares); with ``-r2`` the raw
Pearson r^2 without any ceiling (never mixed with the normalised scores: its own identifiers, ``metric`` attribute
``pearson_r2``). The score is the mean over every scored vertex of every subject, in percent as the challenge's
leaderboard shows it (``score.attrs['raw']``: the same as a fraction; ``score.attrs['subject_scores']``: per subject,
percent; error: the standard error across subjects, or across vertices for one subject).

Modes:

* ``-ridge``: the model's features -> ridge regression (himalaya; the ScalingVisionEncoder grid: 30 alphas
  ``logspace(0, 15)``, 8-fold CV, per vertex) fitted on the fit images, predicting the scored ones. With a region
  (``algonauts2023.subj01.V4-ridge``) the model's committed layer for that region predicts that region's vertices
  (V1: prf-visualrois V1v+V1d, V2: V2v+V2d, V4: hV4, IT: streams ventral). Without one every challenge vertex is
  predicted by the ScalingVisionEncoder search: every search layer (:func:`search_layers`) x max-pool kernel 1..16, the
  best cell per vertex chosen by its CV score on the fit images only.
* ``-direct``: a model that predicts the fMRI itself (``predict_fmri``, e.g. ``grouplin_phase1-fmri``), nothing fitted.

No score is computed on images a model was trained or selected on: a model declaring them (``nsd_seen(subject,
nsd_ids)``: the NSD ids among a subject's training images it saw) is scored on the split's other images only (counted in
``score.attrs['excluded_seen_images']``, with a warning), except on ``lane2023val``, which is named as its selection
set. ``score.attrs['roi_scores']`` holds the per-ROI table (percent), :func:`plot_rois` draws it.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
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
from . import encoding, metric, noise_ceiling, splits
from .data import (FSAVERAGE_VERTICES, HEMISPHERES, SUBJECTS, TEST, TRAINING, Subject, load_subject,
                   read_fsaverage_mask, resolve_root)

REGIONS = {"V1": ("prf-visualrois", ("V1v", "V1d")), "V2": ("prf-visualrois", ("V2v", "V2d")),
           "V4": ("prf-visualrois", ("hV4",)), "IT": ("streams", ("ventral",))}
MODES = ("ridge", "direct")
HELDOUT, LANE2023VAL = "heldout", "lane2023val"
SPLITS = {HELDOUT: "challenge dev kit: RandomState(5) shuffle of the training images, first 90 % fit, last 10 % scored",
          TEST: "the challenge's official test split: every training image fit, the test images scored",
          LANE2023VAL: "GroupLin's validation split (Lane & Kiar's seeded 85/10/5 % split, the 10 %): the images its "
                       "authors selected their checkpoints on"}
RAW_SUFFIX = "r2"
MIN_SCORED_IMAGES = 10
VERSION = 2
BIBTEX = """@article{gifford2023algonauts,
  title={The Algonauts Project 2023 Challenge: How the Human Brain Makes Sense of Natural Scenes},
  author={Gifford, Alessandro T and Lahner, Benjamin and Saba-Sadiya, Sari and Vilas, Martina G and Lascelles, Alex
          and Oliva, Aude and Kay, Kendrick and Roig, Gemma and Cichy, Radoslaw M},
  journal={arXiv preprint arXiv:2301.03198},
  year={2023}
}"""
_logger = logging.getLogger(__name__)


class ModelUnsuitableError(BrainscorePluginsError, TypeError):
    """The model cannot be scored in the benchmark's mode (no features to read, or no fMRI predictions)."""


@dataclass(frozen=True)
class Spec:
    """What an identifier asks for: subjects, region (None: every vertex), split, metric and mode."""
    subjects: tuple[str, ...]
    region: str | None
    split: str
    normalized: bool
    mode: str

    @property
    def metric(self) -> str:
        if self.split == LANE2023VAL:
            return "median_r2"
        return "noise_normalized_r2" if self.normalized else "pearson_r2"


def identifier(subject: str | None = None, region: str | None = None, mode: str = "ridge", split: str = HELDOUT,
               normalized: bool = True) -> str:
    name = ".".join(["algonauts2023", *filter(None, (subject, region))])
    return "-".join([name, *([split] if split != HELDOUT else []), *([] if normalized else [RAW_SUFFIX]), mode])


def _specs() -> dict[str, Spec]:
    specs = {}
    for split in (HELDOUT, TEST):
        for normalized in (True, False):
            for mode in MODES:
                for subject in (None, *SUBJECTS):
                    for region in (None, *REGIONS) if mode == "ridge" else (None,):
                        specs[identifier(subject, region, mode, split, normalized)] = Spec(
                            (subject,) if subject else SUBJECTS, region, split, normalized, mode)
    for subject in (None, *SUBJECTS):
        specs[identifier(subject, mode="direct", split=LANE2023VAL)] = Spec(
            (subject,) if subject else SUBJECTS, None, LANE2023VAL, False, "direct")
    return specs


_SPECS = _specs()


def identifiers() -> list[str]:
    """Every registered identifier: per subject and all eight; held-out and test split, each noise-normalised and raw
    r^2; ridge for all vertices and per region, direct for all vertices; and GroupLin's validation split (direct)."""
    return list(_SPECS)


def parse(benchmark_identifier: str) -> Spec:
    """The :class:`Spec` of a registered identifier."""
    if benchmark_identifier not in _SPECS:
        raise ValueError(f"Unknown Algonauts 2023 benchmark {benchmark_identifier!r}; known: e.g. "
                         f"{identifier('subj01')}, {identifier(region='V4')}, {identifier(split=TEST)}, "
                         f"{identifier(normalized=False)}, {identifier(mode='direct', split=LANE2023VAL)}")
    return _SPECS[benchmark_identifier]


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
    """The layers the whole-cortex search runs over: the model's ``candidate_layers`` where it carries them (ours
    do: a committed ``ModelCommitment`` lists only the committed ones as ``layers``), else its ``layers``."""
    layers = getattr(candidate, "candidate_layers", None)
    return list(candidate.layers if layers is None else layers)


def layer_grids(activations_model, layers: list[str], path: str) -> dict[str, encoding.LayerGrid]:
    """Each layer's output shape as a :class:`.encoding.LayerGrid`, from one image: ``(N, T, C)`` token grids (leading
    tokens beyond a square grid, such as a class token, are the prefix), ``(N, C, H, W)`` maps, anything else flat;
    an activations model may declare, as ``feature_maps``, a layer's map channels-last and its pre-pool size (ours
    do, from their family: :func:`..candidates.feature_maps`)."""
    from ..families import FeatureMap
    model = brainscore_internals.torch_module(activations_model)
    declared = getattr(activations_model, "feature_maps", {})
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
        shape, read = shapes[layer][1:], declared.get(layer, FeatureMap())
        side = int(np.sqrt(shape[0])) if len(shape) == 2 else 0
        if len(shape) == 3 and read.channels_last:  # (H, W, C): H * W tokens of C channels
            grids[layer] = encoding.LayerGrid("tokens", shape[2], shape[0], shape[1], pre_pool=read.pre_pool)
        elif len(shape) == 3:
            grids[layer] = encoding.LayerGrid("channels", shape[0], shape[1], shape[2], pre_pool=read.pre_pool)
        elif side > 1:
            grids[layer] = encoding.LayerGrid("tokens", shape[1], side, side, prefix=shape[0] - side * side,
                                              pre_pool=read.pre_pool)
        else:
            grids[layer] = encoding.LayerGrid("flat", int(np.prod(shape)), 1, 1)
    return grids


@dataclass
class _Images:
    """One subject's images for a split: the fit and scored rows of ``paths`` (the feature store's rows), the scored
    images' NSD ids and (held-out split) repetition counts."""
    paths: list[str]
    fit: np.ndarray
    scored: np.ndarray
    scored_nsd_ids: np.ndarray
    repetitions: np.ndarray | None  # of the scored images (held-out split)
    offset: int = 0  # paths[offset + i] is row i of the scored split's responses
    excluded: int = 0  # scored images dropped because the model saw them

    def keep(self, mask: np.ndarray) -> None:
        self.scored, self.scored_nsd_ids = self.scored[mask], self.scored_nsd_ids[mask]
        if self.repetitions is not None:
            self.repetitions = self.repetitions[mask]


def _images(subject: Subject, split: str) -> _Images:
    """The fit and scored images of ``split``: training images (held-out, lane2023val), then the test images (test)."""
    training = [str(p) for p in subject.images]
    nsd_ids = subject.nsd_ids()
    if split == TEST:
        paths = training + [str(p) for p in subject.test_images]
        return _Images(paths, np.arange(len(training)), np.arange(len(training), len(paths)), subject.nsd_ids(TEST),
                       None, offset=len(training))
    fit, scored = splits.devkit(len(training)) if split == HELDOUT else \
        (np.array([], int), splits.lane2023(len(training), subject.name)["val"])
    repetitions = subject.repetitions()
    return _Images(training, fit, scored, nsd_ids[scored], None if repetitions is None else repetitions[scored])


class Algonauts2023(BenchmarkBase):
    """One registered identifier (:func:`identifiers`); ``data_dir`` else ``$BRAINSCORE_PLUGINS_ALGONAUTS_DIR``."""

    def __init__(self, benchmark_identifier: str, data_dir=None, kernels=encoding.KERNELS, alphas=encoding.ALPHAS,
                 folds: int = encoding.N_FOLDS, progress: bool = True, keep_features: bool = False):
        self.spec = parse(benchmark_identifier)
        super().__init__(identifier=benchmark_identifier, ceiling_func=None, version=VERSION, parent="algonauts2023",
                         bibtex=BIBTEX)
        self.data_dir, self.kernels, self.alphas, self.folds = data_dir, kernels, alphas, folds
        self.progress, self.keep_features = progress, keep_features

    @property
    def ceiling(self) -> Score:
        """100 (percent) for the noise-normalised metric, which is already relative to each vertex's noise ceiling;
        NaN for raw r^2 and GroupLin's median R^2, which have none."""
        return Score(100.0 if self.spec.metric == "noise_normalized_r2" else np.nan)

    def __call__(self, candidate) -> Score:
        """The candidate's score (see the module docstring); every subject's data are checked before anything is
        computed."""
        spec, root = self.spec, resolve_root(self.data_dir)
        subjects = [load_subject(name, root, test=spec.split == TEST) for name in spec.subjects]
        if spec.mode == "direct" and not hasattr(candidate, "predict_fmri"):
            raise ModelUnsuitableError(f"{getattr(candidate, 'identifier', candidate)} predicts no fMRI (no "
                                       f"predict_fmri); score it on {self.identifier.replace('-direct', '-ridge')}")
        group = group_space(root) if spec.mode == "direct" else None
        images = [self._scored_images(candidate, subject) for subject in subjects]
        # every subject's responses (scored, and fitted for ridge) scanned before the first forward pass
        truth = [{h: subject.fmri(h, TEST if spec.split == TEST else TRAINING) for h in HEMISPHERES}
                 for subject in subjects]
        fitted = [{h: subject.fmri(h) for h in HEMISPHERES} if spec.split == TEST and spec.mode == "ridge" else scored
                  for subject, scored in zip(subjects, truth)]
        ceilings = [self._ceilings(subject, found) for subject, found in zip(subjects, images)]
        results = [self._subject(candidate, *args, group)
                   for args in zip(subjects, images, truth, fitted, ceilings)]
        return self._score(results)

    def _scored_images(self, candidate, subject: Subject) -> _Images:
        """The split's images less those the candidate saw (``nsd_seen``), except on the named selection set."""
        found = _images(subject, self.spec.split)
        seen = getattr(candidate, "nsd_seen", None)
        if seen is None or self.spec.split == LANE2023VAL:
            return found
        unseen = ~np.isin(found.scored_nsd_ids, seen(subject.name, subject.nsd_ids()))
        found.excluded = int((~unseen).sum())
        name = getattr(candidate, "identifier", candidate)
        if found.excluded and self.spec.split == TEST:
            raise AlgonautsDataError(f"{name} was trained or selected on {found.excluded} of {subject.name}'s test "
                                     f"images: it cannot be scored on {self.identifier}")
        if unseen.sum() < MIN_SCORED_IMAGES:
            raise AlgonautsDataError(f"{name} was trained or selected on {found.excluded} of the {len(unseen)} images "
                                     f"{self.identifier} scores for {subject.name}, leaving {int(unseen.sum())} (fewer "
                                     f"than {MIN_SCORED_IMAGES}): score it on the test split instead")
        if found.excluded:
            _logger.warning("%s: %s scored on %d of %d images; it was trained or selected on the other %d",
                            self.identifier, name, int(unseen.sum()), len(unseen), found.excluded)
        found.keep(unseen)
        return found

    def _ceilings(self, subject: Subject, found: _Images) -> dict | None:
        """Per hemisphere, the noise ceiling of the scored images (normalised metric), else None."""
        if not self.spec.normalized:
            return None
        if self.spec.split == TEST:
            return {h: subject.test_noise_ceiling(h) for h in HEMISPHERES}
        snr = {h: subject.ncsnr(h) for h in HEMISPHERES}
        if found.repetitions is None or any(value is None for value in snr.values()):
            raise AlgonautsDataError(
                f"{subject.directory} has no noise-ceiling inputs (training_split/noise_ceiling/{{lh,rh}}_ncsnr.npy, "
                f"repetitions.npy): compute them from NSD with `brainscore-plugins noise-ceiling --nsd NSD_DIR`, or "
                f"score raw r^2 on {self.identifier.replace('-' + self.spec.mode, '-r2-' + self.spec.mode)}")
        return {h: noise_ceiling.ceiling(snr[h], found.repetitions) for h in HEMISPHERES}

    def _subject(self, candidate, subject: Subject, found: _Images, fmri: dict, fitted: dict, ceilings: dict | None,
                 group: np.ndarray | None) -> dict:
        """Per-vertex scores of one subject: ``fmri`` holds the scored split's responses, ``fitted`` the training
        responses the ridge fits (the same arrays except on the test split)."""
        vertices = {h: region_vertices(subject, h, self.spec.region) for h in HEMISPHERES}
        truth = {h: np.asarray(fmri[h][found.scored - found.offset])[:, vertices[h]] for h in HEMISPHERES}
        cells = None
        if self.spec.mode == "direct":
            predicted = subject_vertices(candidate.predict_fmri([found.paths[i] for i in found.scored], subject.name),
                                         subject, group)
            predictions = {h: predicted[h][:, vertices[h]] for h in HEMISPHERES}
        else:
            responses = np.zeros((len(found.paths), sum(map(len, vertices.values()))), np.float32)
            responses[found.fit] = np.concatenate([np.asarray(fitted[h][found.fit])[:, vertices[h]]
                                                   for h in HEMISPHERES], axis=1)
            combined, cells = self._ridge(candidate, subject, found, responses)
            predictions = dict(zip(HEMISPHERES, np.split(combined, [len(vertices["lh"])], axis=1)))
        if self.spec.split == LANE2023VAL:
            per_vertex = {h: metric.determination(predictions[h], truth[h]) for h in HEMISPHERES}
        else:
            per_vertex = {h: metric.challenge_scores(predictions[h], truth[h],
                                                     None if ceilings is None else ceilings[h][vertices[h]])
                          for h in HEMISPHERES}
        rois = {h: {g: {r: np.flatnonzero(np.isin(vertices[h], idx)) for r, idx in roi.items()}
                    for g, roi in subject.rois(h).items()} for h in HEMISPHERES}
        table = metric.roi_table(per_vertex, rois, subject=subject.name)
        table["score"] *= 100
        return {"vertices": np.concatenate([per_vertex[h] for h in HEMISPHERES]), "cells": cells, "rois": table,
                "subject": subject.name, "scored": len(found.scored), "excluded": found.excluded}

    def _score(self, results: list[dict]) -> Score:
        """Pooled over every subject's vertices: the mean (challenge metrics) or median (median R^2), in percent."""
        pool = np.median if self.spec.split == LANE2023VAL else np.mean
        fraction = float(pool(np.concatenate([r["vertices"] for r in results])))
        per_subject = np.array([100 * pool(r["vertices"]) for r in results])
        score = Score(100 * fraction)
        if len(results) > 1:
            score.attrs["error"] = per_subject.std(ddof=1) / np.sqrt(len(results))
        else:
            score.attrs["error"] = 100 * results[0]["vertices"].std(ddof=1) / np.sqrt(len(results[0]["vertices"]))
        score.attrs["ceiling"] = self.ceiling
        score.attrs["raw"] = Score(fraction)
        score.attrs["unit"] = "percent"
        score.attrs["metric"] = self.spec.metric
        score.attrs["subject_scores"] = pd.Series(per_subject, index=[r["subject"] for r in results], name="percent")
        score.attrs["scored_images"] = {r["subject"]: r["scored"] for r in results}
        score.attrs["excluded_seen_images"] = {r["subject"]: r["excluded"] for r in results}
        score.attrs["roi_scores"] = pd.concat([r["rois"] for r in results], ignore_index=True)
        if self.spec.mode == "ridge":
            score.attrs["search"] = pd.concat([r["cells"] for r in results], ignore_index=True)
        score.attrs["split"] = SPLITS[self.spec.split]
        return score

    def _ridge(self, candidate, subject: Subject, found: _Images, responses: np.ndarray):
        """Predictions of the scored images from ``responses`` (rows of ``found.paths``; only the fit rows are read)
        and the search's cells."""
        activations_model = getattr(candidate, "activations_model", None)
        if activations_model is None or brainscore_internals.torch_module(activations_model) is None:
            raise ModelUnsuitableError(
                f"{getattr(candidate, 'identifier', candidate)} exposes no PyTorch activations model (as Brain-Score's "
                f"ModelCommitment does), so its layers cannot be read for {self.identifier}")
        if self.spec.region:
            layers, kernels = [candidate.layer_model.region_layer_map[self.spec.region]], None
        else:
            layers, kernels = search_layers(candidate), self.kernels
        paths = found.paths
        grids = layer_grids(activations_model, layers, paths[0])
        reduce = {layer: grid.pre_pooled for layer, grid in grids.items() if grid.pre_pool}  # stored pre-pooled
        grids = {layer: grid.stored() for layer, grid in grids.items()}
        folder = self._features_folder(activations_model, subject, paths)
        widths = {layer: grid.row_width for layer, grid in grids.items()}
        best = None
        try:
            for group in features.plan_groups(widths, len(paths), int(0.8 * features.free_bytes(folder))):
                store = features.extract(activations_model, group, paths, folder / f"layers-{group[0]}",
                                         progress=self.progress,
                                         reduce={layer: reduce[layer] for layer in group if layer in reduce})
                result = encoding.search(store, {layer: grids[layer] for layer in group}, responses,
                                         store.rows(np.array(paths)[found.fit]),
                                         store.rows(np.array(paths)[found.scored]), kernels=kernels,
                                         alphas=self.alphas, folds=self.folds, progress=self.progress)
                best = result if best is None else _better(best, result)
                if not self.keep_features:
                    shutil.rmtree(folder / f"layers-{group[0]}", ignore_errors=True)
        finally:
            if not self.keep_features:
                shutil.rmtree(folder, ignore_errors=True)
        return best.predictions, best.cells.assign(subject=subject.name)

    def _features_folder(self, activations_model, subject: Subject, paths: list[str]) -> Path:
        key = hashlib.sha256("\n".join([activations_model.identifier, str(subject.directory.resolve()),
                                        *(f"{Path(p).name}:{Path(p).stat().st_size}" for p in paths)]).encode())
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
