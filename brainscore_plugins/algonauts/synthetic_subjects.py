"""Synthetic subjects in the Algonauts 2023 challenge layout (:data:`.data.LAYOUT`), for tests and speed scripts.

Responses are the caller's: write the images first (:func:`write_images`), compute responses from them, then write
the rest (:func:`write_subject` with ``images=None``); or pass both to :func:`write_subject` at once. Arrays may be
``np.memmap``: responses are copied in row chunks and images written one PNG at a time, so nothing large is held twice.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from brainscore_plugins import npy_memmap
from brainscore_plugins.algonauts.data import FSAVERAGE_VERTICES, HEMISPHERES, ROI_GROUPS

ROI_NAMES = {
    "prf-visualrois": ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"),
    "floc-bodies": ("EBA", "FBA-1", "FBA-2", "mTL-bodies"),
    "floc-faces": ("OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"),
    "floc-places": ("OPA", "PPA", "RSC"),
    "floc-words": ("OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"),
    "streams": ("early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"),
}
EMPTY_RH_ROI = ("floc-faces", "aTL-faces")  # default labels leave it without rh vertices, as some real subjects do
NSD_IMAGES = 73000
_CHUNK_BYTES = 64 << 20


def mappings() -> dict[str, dict[int, str]]:
    """group -> {label: ROI name} as in the challenge's mapping files (0: 'Unknown')."""
    return {group: {0: "Unknown", **{i: name for i, name in enumerate(names, 1)}} for group, names in ROI_NAMES.items()}


def random_images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` smooth random RGB images, uint8 (n, size, size, 3): bilinearly upsampled noise at three scales."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), dtype=np.float32)
    for coarse, weight in ((3, 1.0), (6, 0.5), (12, 0.25)):
        up = _upsampling(coarse, size)
        noise = rng.standard_normal((n, coarse, coarse, 3), dtype=np.float32)
        images += weight * np.einsum("ij,njkc,lk->nilc", up, noise, up, optimize=True)
    low, high = images.min(axis=(1, 2, 3), keepdims=True), images.max(axis=(1, 2, 3), keepdims=True)
    return ((images - low) / np.maximum(high - low, 1e-6) * 255).round().astype(np.uint8)


def write_images(root: str | Path, name: str, images: np.ndarray, nsd_ids: np.ndarray | None = None, *,
                 test_images: int = 2, seed: int = 0, progress: bool = False) -> list[Path]:
    """The training PNGs ``train-{i+1:04d}_nsd-{id:05d}.png`` of uint8 ``images`` (n, H, W, 3) and ``test_images``
    random test PNGs; NSD ids default to a deterministic sorted random distinct set. Returns the training paths."""
    subject = Path(root) / name
    train_dir = subject / "training_split" / "training_images"
    test_dir = subject / "test_split" / "test_images"
    train_dir.mkdir(parents=True, exist_ok=True)
    test_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(NSD_IMAGES, len(images) + test_images, replace=False))
    train_ids = ids[:len(images)] if nsd_ids is None else np.asarray(nsd_ids)
    test_ids = np.setdiff1d(ids, train_ids)[:test_images]
    if len(train_ids) != len(images):
        raise ValueError(f"{len(train_ids)} nsd_ids for {len(images)} images")
    paths = []
    for i in tqdm(range(len(images)), desc=f"{name} training images", disable=not progress):
        paths.append(train_dir / f"train-{i + 1:04d}_nsd-{int(train_ids[i]):05d}.png")
        Image.fromarray(np.asarray(images[i])).save(paths[-1], compress_level=1)
    size = images.shape[1] if len(images) else 64
    for i, pixels in enumerate(random_images(test_images, size, seed + 1)):
        Image.fromarray(pixels).save(test_dir / f"test-{i + 1:04d}_nsd-{int(test_ids[i]):05d}.png", compress_level=1)
    return paths


def default_labels(n_vertices: int, hemisphere: str, group: str, seed: int = 0) -> np.ndarray:
    """Deterministic int32 labels of ``group`` over ``n_vertices``: about half the vertices split evenly among its
    ROIs (every ROI gets some once ``n_vertices`` >= its ROI count), except :data:`EMPTY_RH_ROI` in rh."""
    names = ROI_NAMES[group]
    rng = np.random.default_rng([seed, HEMISPHERES.index(hemisphere), ROI_GROUPS.index(group)])
    per_roi = max(1, n_vertices // (2 * len(names)))
    order = rng.permutation(n_vertices)[:per_roi * len(names)]
    labels = np.zeros(n_vertices, dtype=np.int32)
    labels[order] = np.repeat(np.arange(1, len(names) + 1, dtype=np.int32), per_roi)[:len(order)]
    if hemisphere == "rh" and group == EMPTY_RH_ROI[0]:
        labels[labels == names.index(EMPTY_RH_ROI[1]) + 1] = 0
    return labels


def write_subject(root: str | Path, name: str, images: np.ndarray | None, fmri: dict[str, np.ndarray], *,
                  nsd_ids: np.ndarray | None = None, rois: dict[str, dict[str, np.ndarray]] | None = None,
                  ncsnr: dict[str, np.ndarray] | None = None, repetitions: np.ndarray | None = None,
                  test_fmri: dict[str, np.ndarray] | None = None,
                  test_noise_ceiling: dict[str, np.ndarray] | None = None, test_images: int = 2, seed: int = 0, progress: bool = False) -> Path:
    """Writes ``<root>/<name>`` in the challenge layout and returns that folder.

    ``images``: as :func:`write_images` (None: keep the images written before). ``fmri``: {hemisphere: (n_images,
    n_vertices)} responses, saved as float32; their vertex counts set the fsaverage masks (float32 0/1 at a
    deterministic random subset). ``rois``: {group: {hemisphere: challenge-space labels}} replacing
    :func:`default_labels` for the groups given. ``ncsnr`` ({hemisphere: NSD ncsnr per vertex}) and ``repetitions``
    (trials per training image): what ``noise-ceiling`` writes, optional. ``test_fmri`` ({hemisphere: (test_images,
    n_vertices)}) and ``test_noise_ceiling`` ({hemisphere: fraction per vertex}): the organisers' test split, optional.
    """
    subject = Path(root) / name
    if images is not None:
        write_images(root, name, images, nsd_ids, test_images=test_images, seed=seed, progress=progress)
    fmri_dir, masks = subject / "training_split" / "training_fmri", subject / "roi_masks"
    fmri_dir.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for hemisphere, responses in fmri.items():
        _copy_rows(responses, fmri_dir / f"{hemisphere}_training_fmri.npy")
        rng = np.random.default_rng([seed, HEMISPHERES.index(hemisphere)])
        vertices = np.sort(rng.choice(FSAVERAGE_VERTICES, responses.shape[1], replace=False))
        mask = np.zeros(FSAVERAGE_VERTICES, dtype=np.float32)
        mask[vertices] = 1
        np.save(masks / f"{hemisphere}.all-vertices_fsaverage_space.npy", mask)
        for group in ROI_GROUPS:
            labels = (rois or {}).get(group, {}).get(hemisphere)
            labels = default_labels(len(vertices), hemisphere, group, seed) if labels is None else np.asarray(labels)
            np.save(masks / f"{hemisphere}.{group}_challenge_space.npy", labels)
            fsaverage = np.zeros(FSAVERAGE_VERTICES, dtype=labels.dtype)
            fsaverage[vertices] = labels
            np.save(masks / f"{hemisphere}.{group}_fsaverage_space.npy", fsaverage)
    for group, mapping in mappings().items():
        np.save(masks / f"mapping_{group}.npy", mapping)
    files = {**{f"training_split/noise_ceiling/{h}_ncsnr.npy": v for h, v in (ncsnr or {}).items()},
             **{f"test_split/test_fmri/{h}_test_fmri.npy": v for h, v in (test_fmri or {}).items()},
             **{f"test_split/noise_ceiling/{h}_noise_ceiling.npy": v for h, v in (test_noise_ceiling or {}).items()}}
    if repetitions is not None:
        files["training_split/noise_ceiling/repetitions.npy"] = np.asarray(repetitions, dtype=np.int64)
    for relative, array in files.items():
        (subject / relative).parent.mkdir(parents=True, exist_ok=True)
        np.save(subject / relative, array if relative.endswith("repetitions.npy") else np.asarray(array, np.float32))
    return subject


def _copy_rows(array: np.ndarray, path: Path) -> None:
    """``array`` saved as a float32 .npy, copied in row chunks (``array`` may be a memmap larger than memory); its
    space is allocated first (a full disk is an ``OSError``, see :mod:`..npy_memmap`), a failed copy removed."""
    out = npy_memmap.create(path, np.float32, array.shape)
    rows = max(1, _CHUNK_BYTES // max(1, int(np.prod(array.shape[1:])) * 4))
    try:
        for start in range(0, len(array), rows):
            out[start:start + rows] = array[start:start + rows]
        out.flush()
    except BaseException:
        del out
        path.unlink(missing_ok=True)
        raise
    del out


def _upsampling(coarse: int, size: int) -> np.ndarray:
    """(size, coarse) bilinear interpolation weights from a coarse grid spanning the image."""
    position = np.linspace(0, coarse - 1, size)
    left = np.minimum(np.floor(position).astype(int), coarse - 2)
    frac = position - left
    weights = np.zeros((size, coarse), dtype=np.float32)
    weights[np.arange(size), left] = 1 - frac
    weights[np.arange(size), left + 1] = frac
    return weights
