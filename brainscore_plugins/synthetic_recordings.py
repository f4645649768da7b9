"""Small synthetic neural data in Brain-Score's exact formats, for offline demos and tests.

Stimuli are procedurally drawn images (oriented gratings and blobs at several positions, a few "objects" =
pattern families) written as PNG files; responses are a fixed random linear map of each image's low-resolution
luminance and orientation energy, observed with trial noise over repetitions, so that early visual features
predict them and a split-half ceiling exists. The generator is deterministic in ``seed``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from region_commitment import atomic

OBJECTS = ("grating", "plaid", "blob", "checker")


def _image(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(3, 12), rng.uniform(0, 2 * np.pi)
    u = np.cos(theta) * x + np.sin(theta) * y
    cx, cy, radius = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.35)
    envelope = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius ** 2))
    if kind == "grating":
        pattern = np.sin(2 * np.pi * freq * u + phase)
    elif kind == "plaid":
        v = -np.sin(theta) * x + np.cos(theta) * y
        pattern = np.sin(2 * np.pi * freq * u + phase) * np.sin(2 * np.pi * freq * v)
    elif kind == "blob":
        pattern = 2 * envelope - 1
    else:
        pattern = np.sign(np.sin(2 * np.pi * freq * x + phase) * np.sin(2 * np.pi * freq * y))
    color = rng.uniform(0.3, 1.0, size=3)
    gray = 0.5 + 0.5 * pattern * envelope
    return (np.clip(gray[..., None] * color, 0, 1) * 255).astype(np.uint8)


def stimulus_set(directory: str | Path, n_per_object: int = 12, size: int = 96, seed: int = 0,
                 identifier: str = "bsp-synthetic"):
    """A ``StimulusSet`` of ``len(OBJECTS) * n_per_object`` PNG images written (atomically) under ``directory``."""
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, paths = [], {}
    for obj in OBJECTS:
        for i in range(n_per_object):
            stimulus_id = f"{identifier}-{obj}-{i:03d}"
            pixels = _image(obj, rng, size)
            path = directory / f"{stimulus_id}.png"
            if not path.exists():
                with atomic.replacing(path) as tmp:
                    Image.fromarray(pixels).save(tmp)
            rows.append({"stimulus_id": stimulus_id, "object_name": obj, "image_index": i})
            paths[stimulus_id] = str(path)
    stimuli = StimulusSet(rows)
    stimuli.stimulus_paths = paths
    stimuli.identifier = f"{identifier}-seed{seed}-n{len(rows)}-s{size}"
    return stimuli


def image_features(stimuli, grid: int = 4) -> np.ndarray:
    """Per image: luminance on a ``grid x grid`` raster and horizontal / vertical gradient energy (z-scored)."""
    features = []
    for stimulus_id in stimuli["stimulus_id"]:
        with Image.open(stimuli.get_stimulus(stimulus_id)) as image:
            gray = np.asarray(image.convert("L"), dtype=float) / 255
        blocks = gray.reshape(grid, gray.shape[0] // grid, grid, gray.shape[1] // grid)
        dx, dy = np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=0))
        features.append(np.concatenate([blocks.mean(axis=(1, 3)).ravel(), [dx.mean(), dy.mean(), gray.std()]]))
    features = np.asarray(features)
    return (features - features.mean(0)) / (features.std(0) + 1e-8)


def neural_assembly(stimuli, region: str, n_neuroids: int = 24, repetitions: int = 4, noise: float = 0.5,
                    seed: int = 0):
    """A ``NeuroidAssembly`` (presentation x neuroid x time_bin) of noisy linear responses to image features."""
    rng = np.random.default_rng(seed + 1)
    features = image_features(stimuli)
    signal = features @ rng.normal(size=(features.shape[1], n_neuroids))
    return repeated_assembly(stimuli, signal / signal.std(0), region, repetitions, noise, seed)


def planted_responses(reference_activations: np.ndarray, stimulus_activations: np.ndarray,
                      band: tuple[int, int] = (10, 60), n_latents: int = 5, n_neuroids: int = 40,
                      seed: int = 0) -> np.ndarray:
    """Noise-free responses (stimuli x neuroids) planted in one layer: each neuroid a random mix of a few latents,
    each latent a random combination of a middle band of the layer's principal components on the reference set.

    A dense random readout makes neighbouring layers of a residual network almost equally predictive; a middle PCA
    band is specific to the layer it came from, so layer selection has a clear ground truth.
    """
    rng = np.random.default_rng(seed)
    mean = reference_activations.mean(0)
    _, _, components = np.linalg.svd(reference_activations - mean, full_matrices=False)
    projected = (stimulus_activations - mean) @ components[band[0]:band[1]].T
    projected /= projected.std(0) + 1e-12
    latents = projected @ rng.normal(size=(projected.shape[1], n_latents))
    responses = latents @ rng.normal(size=(n_latents, n_neuroids))
    return responses / responses.std(0)


def repeated_assembly(stimuli, responses: np.ndarray, region: str, repetitions: int = 4, noise: float = 0.3,
                      seed: int = 0):
    """A ``NeuroidAssembly`` of ``responses`` observed ``repetitions`` times with Gaussian trial noise."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly

    rng = np.random.default_rng(seed + 7)
    n, n_neuroids = responses.shape
    values = np.concatenate([responses + noise * rng.normal(size=responses.shape) for _ in range(repetitions)])
    assembly = NeuroidAssembly(
        values[..., None],
        coords={
            "stimulus_id": ("presentation", np.tile(stimuli["stimulus_id"].values, repetitions)),
            "object_name": ("presentation", np.tile(stimuli["object_name"].values, repetitions)),
            "repetition": ("presentation", np.repeat(np.arange(repetitions), n)),
            "neuroid_id": ("neuroid", [f"{region}-{i}" for i in range(n_neuroids)]),
            "region": ("neuroid", [region] * n_neuroids),
            "time_bin_start": ("time_bin", [70]),
            "time_bin_stop": ("time_bin", [170]),
        },
        dims=["presentation", "neuroid", "time_bin"])
    assembly.attrs["stimulus_set"] = stimuli
    assembly.attrs["stimulus_set_identifier"] = stimuli.identifier
    return assembly


def fitting_stimuli(directory: str | Path, n_per_object: int = 12, size: int = 96, seed: int = 100):
    """Images to fit a behavioral readout on: a ``stimulus_set`` with ``image_label`` = its object."""
    stimuli = stimulus_set(directory, n_per_object=n_per_object, size=size, seed=seed, identifier="bsp-fitting")
    stimuli["image_label"] = stimuli["object_name"]
    return stimuli


def behavioral_trials(stimuli, probabilities: np.ndarray, objects=OBJECTS, trials_per_pair: int = 50,
                      seed: int = 0):
    """A ``BehavioralAssembly`` of two-alternative match-to-sample trials (Rajalingham2018's format).

    Each stimulus (its ``object_name`` is the sample object) is shown ``trials_per_pair`` times against every other
    object as distractor; the observer picks the sample with probability ``p_sample / (p_sample + p_distractor)``
    from its row of ``probabilities`` (stimuli x ``objects``), the rule Brain-Score's ``i2n`` applies to models.
    """
    from brainscore_core.supported_data_standards.brainio.assemblies import BehavioralAssembly

    rng = np.random.default_rng(seed + 11)
    column = {obj: i for i, obj in enumerate(objects)}
    rows = []
    for stimulus_id, sample, p in zip(stimuli["stimulus_id"].values, stimuli["object_name"].values, probabilities):
        for distractor in objects:
            if distractor == sample:
                continue
            p_sample = p[column[sample]] / (p[column[sample]] + p[column[distractor]])
            for trial in range(trials_per_pair):
                choice = sample if rng.random() < p_sample else distractor
                rows.append((stimulus_id, sample, distractor, choice, trial))
    ids, samples, distractors, choices, trials = map(list, zip(*rows))
    assembly = BehavioralAssembly(
        choices,
        coords={"stimulus_id": ("presentation", ids), "sample_obj": ("presentation", samples),
                "dist_obj": ("presentation", distractors), "truth": ("presentation", samples),
                "choice": ("presentation", choices), "trial": ("presentation", trials),
                "correct": ("presentation", [c == s for c, s in zip(choices, samples)])},
        dims=["presentation"])
    assembly.attrs["stimulus_set"] = stimuli
    assembly.attrs["stimulus_set_identifier"] = stimuli.identifier
    return assembly


def imagenet_hdf5(path: str | Path, images: list, n: int, size: int = 128) -> Path:
    """A stand-in for Brain-Score's ``imagenet2012.hdf5`` (dataset ``val/images``: 50,000 RGB ``uint8`` images) with
    only the entries ``_get_imagenet_val(n)`` reads filled, from ``images`` (file paths, cycled) resized to ``size``;
    chunked and compressed, so the unfilled entries take no space."""
    import h5py
    from region_commitment.reference import IMAGENET_CLASSES, IMAGES_PER_CLASS, imagenet_val_indices

    with atomic.replacing(Path(path)) as tmp, h5py.File(tmp, "w") as f:
        dataset = f.create_dataset("val/images", shape=(IMAGENET_CLASSES * IMAGES_PER_CLASS, size, size, 3),
                                   dtype="uint8", chunks=(1, size, size, 3), compression="gzip")
        for k, index in enumerate(imagenet_val_indices(n)):
            with Image.open(images[k % len(images)]) as image:
                dataset[index] = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
    return Path(path)
