"""Noise ceilings of any set of Algonauts 2023 training images, computed the way the challenge organisers computed
the test split's (gifale95/algonauts_2023 ``challenge_data_preparation.py``)::

    norm_term = (A/3 + B/2 + C/1) / (A + B + C)        # A, B, C: images shown 3, 2, 1 times
    noise_ceiling = ncsnr^2 / (ncsnr^2 + norm_term)    # per vertex, a fraction

``ncsnr`` is NSD's noise-ceiling SNR (``{lh,rh}.ncsnr.mgh`` of ``betas_fithrf_GLMdenoise_RR`` in fsaverage space),
taken at the subject's challenge vertices; the repetition counts come from NSD's experimental design
(``nsd_expdesign.mat``): the trials of each training image within the subject's training sessions (all but the last
three), over which its training response was averaged. :func:`write` stores both beside the challenge data
(``training_split/noise_ceiling/``) once; the benchmarks then compute the ceiling of exactly the images they score.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from region_commitment import atomic

from ..errors import AlgonautsDataError
from .data import FSAVERAGE_VERTICES, HEMISPHERES, NCSNR_DIR, Subject

COMPLETED_SESSIONS = {"subj01": 40, "subj02": 40, "subj03": 32, "subj04": 30, "subj05": 40, "subj06": 32,
                      "subj07": 40, "subj08": 30}
TRIALS_PER_SESSION = 750
TEST_SESSIONS = 3
EXPDESIGN = ("nsddata", "experiments", "nsd", "nsd_expdesign.mat")
NCSNR = ("nsddata_betas", "ppdata", "{subject}", "fsaverage", "betas_fithrf_GLMdenoise_RR", "{hemisphere}.ncsnr.mgh")
_MGH_TYPES = {0: ">u1", 1: ">i4", 3: ">f4", 4: ">i2"}
_MGH_DATA_OFFSET = 284


def norm_term(repetitions: np.ndarray) -> float:
    """The organisers' ``(A/3 + B/2 + C/1) / (A + B + C)`` of the scored images' repetition counts (1 to 3)."""
    counts = np.asarray(repetitions)
    if counts.size == 0 or counts.min() < 1 or counts.max() > 3:
        raise ValueError(f"repetition counts must be 1, 2 or 3 for each scored image, not {np.unique(counts)}")
    a, b, c = (int(np.sum(counts == n)) for n in (3, 2, 1))
    return (a / 3 + b / 2 + c / 1) / (a + b + c)


def ceiling(ncsnr: np.ndarray, repetitions: np.ndarray) -> np.ndarray:
    """Per-vertex noise ceiling (a fraction) of images with these repetition counts."""
    snr2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    return snr2 / (snr2 + norm_term(repetitions))


def read_mgh(path: str | Path) -> np.ndarray:
    """The data of a FreeSurfer MGH/MGZ volume (big-endian header, data at byte 284), flattened in file order; read
    without any third-party package."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".mgz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise AlgonautsDataError(f"{path} cannot be read ({error}): replace it with NSD's file") from error
    if len(raw) < _MGH_DATA_OFFSET:
        raise AlgonautsDataError(f"{path} is {len(raw)} bytes, shorter than an MGH header: replace it with NSD's file")
    version, width, height, depth, frames, kind = np.frombuffer(raw, ">i4", 6)
    count = int(width) * int(height) * int(depth) * int(frames)
    if version != 1 or int(kind) not in _MGH_TYPES or count <= 0:
        raise AlgonautsDataError(f"{path} is not an MGH volume (version {version}, type {kind}): replace it with "
                                 f"NSD's file")
    dtype = np.dtype(_MGH_TYPES[int(kind)])
    if len(raw) < _MGH_DATA_OFFSET + count * dtype.itemsize:
        raise AlgonautsDataError(f"{path} is truncated: its header announces {count} values: replace it with NSD's "
                                 f"file")
    return np.frombuffer(raw, dtype, count, _MGH_DATA_OFFSET).astype(np.float64)


def read_expdesign(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """NSD's ``(masterordering, subjectim)``, 0-based (the file's are 1-based), read with scipy (no code runs)."""
    from scipy.io import loadmat
    path = Path(path)
    try:
        design = loadmat(path, variable_names=["masterordering", "subjectim"])
        return np.asarray(design["masterordering"]).ravel() - 1, np.asarray(design["subjectim"]) - 1
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError) as error:
        raise AlgonautsDataError(f"{path} is not NSD's nsd_expdesign.mat (masterordering, subjectim): {error}") \
            from error


def training_trials(subject: str, masterordering: np.ndarray, subjectim: np.ndarray) -> np.ndarray:
    """The NSD image ids of ``subject``'s trials in its training sessions (the organisers' ``train_trials``)."""
    sessions = COMPLETED_SESSIONS[subject]
    trials = subjectim[int(subject[-2:]) - 1, masterordering][:sessions * TRIALS_PER_SESSION]
    return trials[:(sessions - TEST_SESSIONS) * TRIALS_PER_SESSION]


def repetitions(subject: Subject, masterordering: np.ndarray, subjectim: np.ndarray) -> np.ndarray:
    """Trials of each training image (row order) in the subject's training sessions.

    Raises:
        AlgonautsDataError: the training images are not exactly the images of those sessions (another subject's
            design, or a modified image folder).
    """
    ids, counts = np.unique(training_trials(subject.name, masterordering, subjectim), return_counts=True)
    nsd_ids = subject.nsd_ids()
    if not np.array_equal(np.sort(nsd_ids), ids):
        raise AlgonautsDataError(f"{subject.directory} holds {len(nsd_ids)} training images, but NSD's design gives "
                                 f"{subject.name} {len(ids)} distinct images in its training sessions "
                                 f"({len(np.setdiff1d(nsd_ids, ids))} of ours not among them): use the "
                                 f"nsd_expdesign.mat of the NSD release the challenge data were made from")
    return counts[np.searchsorted(ids, nsd_ids)]


def challenge_ncsnr(subject: Subject, hemisphere: str, nsd_dir: Path) -> np.ndarray:
    """NSD's fsaverage ncsnr at the subject's challenge vertices (its ``all-vertices`` mask)."""
    path = nsd_dir.joinpath(*NCSNR).as_posix().format(subject=subject.name, hemisphere=hemisphere)
    values = read_mgh(path)
    if values.shape != (FSAVERAGE_VERTICES,):
        raise AlgonautsDataError(f"{path} holds {values.size} values, not one per fsaverage vertex "
                                 f"({FSAVERAGE_VERTICES}): use NSD's fsaverage-space ncsnr file")
    values = values[subject.fsaverage_mask(hemisphere)]
    if not np.isfinite(values).all() or values.min() < 0:
        raise AlgonautsDataError(f"{path} has NaN, inf or negative ncsnr at the challenge vertices of {subject.name}: "
                                 f"use NSD's betas_fithrf_GLMdenoise_RR ncsnr file")
    return values


def write(subject: Subject, nsd_dir: str | Path) -> dict:
    """Writes ``training_split/noise_ceiling/{lh,rh}_ncsnr.npy`` and ``repetitions.npy`` of ``subject`` from the NSD
    folder ``nsd_dir`` (every file read and checked before any is written; each written atomically) and returns a
    summary with the norm term and mean ceiling of the development kit's held-out images."""
    from .splits import devkit

    nsd_dir = Path(nsd_dir).expanduser()
    design = nsd_dir.joinpath(*EXPDESIGN)
    if not design.is_file():
        raise AlgonautsDataError(f"{design} is missing: point --nsd at the Natural Scenes Dataset folder (holding "
                                 f"nsddata/ and nsddata_betas/)")
    counts = repetitions(subject, *read_expdesign(design))
    snr = {h: challenge_ncsnr(subject, h, nsd_dir) for h in HEMISPHERES}
    folder = subject.directory.joinpath(*NCSNR_DIR)
    for name, array in [*((f"{h}_ncsnr.npy", snr[h]) for h in HEMISPHERES), ("repetitions.npy", counts)]:
        with atomic.replacing(folder / name) as tmp:
            np.save(tmp, array)
    heldout = counts[devkit(len(counts))[1]]
    summary = {"subject": subject.name, "folder": str(folder), "images": len(counts),
               "repetitions": {str(n): int(np.sum(counts == n)) for n in (1, 2, 3)},
               "heldout_norm_term": norm_term(heldout),
               "heldout_mean_noise_ceiling": float(np.mean(np.concatenate([ceiling(snr[h], heldout)
                                                                           for h in HEMISPHERES])))}
    atomic.write_text(folder / "noise_ceiling.json", json.dumps(summary, indent=1) + "\n")
    return summary
