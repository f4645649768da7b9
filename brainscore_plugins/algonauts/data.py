"""The Algonauts 2023 challenge data (NSD fMRI) read from a local folder in the challenge's own layout (:data:`LAYOUT`).

Every problem is an :class:`~brainscore_plugins.errors.AlgonautsDataError` whose one-line message names the file, what
is wrong with it and where it should be. :func:`load_subject` checks everything that is cheap (files, image names,
array shapes, ROI labels, noise ceilings) before any response is read; :meth:`Subject.fmri` scans the responses for
NaN/inf when it reads them. No file is unpickled except the ROI name mappings, by a restricted unpickler.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from brainscore_plugins import settings
from brainscore_plugins.errors import AlgonautsDataError

SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
HEMISPHERES = ("lh", "rh")
ROI_GROUPS = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
FSAVERAGE_VERTICES = 163842
FOLDER_NAME = "algonauts_2023_challenge_data"

LAYOUT = f"""\
{FOLDER_NAME}/subj01 ... subj08/
  training_split/training_images/train-NNNN_nsd-NNNNN.png   (NNNN: 1-based running index, NNNNN: NSD id)
  training_split/training_fmri/{{lh,rh}}_training_fmri.npy    float (n_images, n_vertices)
  training_split/noise_ceiling/{{lh,rh}}_ncsnr.npy           optional: NSD's ncsnr per vertex    (written by
  training_split/noise_ceiling/repetitions.npy              optional: trials per training image   `noise-ceiling`)
  test_split/test_images/test-NNNN_nsd-NNNNN.png
  test_split/test_fmri/{{lh,rh}}_test_fmri.npy                optional (the organisers'): float (n_test, n_vertices)
  test_split/noise_ceiling/{{lh,rh}}_noise_ceiling.npy        optional (the organisers'): fraction per vertex
  roi_masks/{{lh,rh}}.all-vertices_fsaverage_space.npy        0/1 mask of the {FSAVERAGE_VERTICES} fsaverage vertices
  roi_masks/{{lh,rh}}.<group>_challenge_space.npy             int ROI label per vertex (0: none)
  roi_masks/mapping_<group>.npy                             dict {{label: ROI name}}
  groups: {", ".join(ROI_GROUPS)}"""

_LAYOUT_LINE = ("expected layout: subjNN/training_split/training_images/train-NNNN_nsd-NNNNN.png, "
                "subjNN/training_split/training_fmri/{lh,rh}_training_fmri.npy, "
                "subjNN/roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy, "
                "subjNN/roi_masks/{lh,rh}.<group>_challenge_space.npy and subjNN/roi_masks/mapping_<group>.npy "
                f"for the groups {', '.join(ROI_GROUPS)}")
TRAINING, TEST = "training", "test"
NCSNR_DIR = ("training_split", "noise_ceiling")
_NAMES = {TRAINING: re.compile(r"train-(\d{4})_nsd-(\d{5})\.png"), TEST: re.compile(r"test-(\d{4})_nsd-(\d{5})\.png")}
_ORIGINAL = "replace it with the file from the challenge's download"
_CHUNK_BYTES = 64 << 20


def resolve_root(data_dir: str | Path | None = None) -> Path:
    """The challenge folder (holding subj01 ... subj08): ``data_dir``, else ``$BRAINSCORE_PLUGINS_ALGONAUTS_DIR``;
    a parent of ``algonauts_2023_challenge_data/`` is accepted too."""
    source = "data_dir"
    if data_dir is None:
        data_dir, source = settings.algonauts_dir(), f"${settings.ALGONAUTS}"
    if data_dir is None:
        raise AlgonautsDataError(f"no Algonauts 2023 data folder given: pass data_dir=... or set ${settings.ALGONAUTS} "
                                 f"to the folder that holds subj01 ... subj08 ({FOLDER_NAME})")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise AlgonautsDataError(f"the Algonauts 2023 data folder {root} ({source}) does not exist: point {source} at "
                                 f"the folder that holds subj01 ... subj08 ({FOLDER_NAME})")
    nested = root / FOLDER_NAME
    if nested.is_dir() and not any((root / name).is_dir() for name in SUBJECTS):
        return nested
    return root


MAX_MAPPING_BYTES = 1 << 20  # a mapping file is a few hundred bytes


class _ScalarArray(np.ndarray):
    """What a mapping's pickle may rebuild: an array whose state declares a single element (a 0-d object array);
    a larger declared shape is refused before numpy allocates it."""

    def __setstate__(self, state):
        shape = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if not isinstance(shape, tuple) or int(np.prod(shape, dtype=np.int64)) > 1:
            raise ValueError(f"the pickled array declares shape {shape!r}, not a single dict")
        super().__setstate__(state)


def _reconstruct(cls, shape, dtype):
    return np.ndarray.__new__(_ScalarArray, (0,), dtype)


class _MappingUnpickler(pickle.Unpickler):
    """Rebuilds a 0-d object array and nothing else: only numpy's array/dtype/scalar constructors are resolved, and
    the array's declared shape is checked before it is allocated (:class:`_ScalarArray`)."""

    _ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise AlgonautsDataError(f"{self.path} refers to {ascii(module)}.{ascii(name)}; a mapping file holds only "
                                     f"a dict of ints to names: {_ORIGINAL} (it was not loaded)")
        return _reconstruct if name == "_reconstruct" else super().find_class(module, name)


def read_mapping(path: str | Path) -> dict[int, str]:
    """A ``mapping_<group>.npy`` ({label: ROI name}, saved by ``np.save(dict)``) read without running pickled code."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            raise AlgonautsDataError(f"{path} is {path.stat().st_size:,} bytes, not a mapping of ROI names (at most "
                                     f"{MAX_MAPPING_BYTES:,}): {_ORIGINAL}")
        with path.open("rb") as file:
            version = npy_format.read_magic(file)
            if version not in ((1, 0), (2, 0)):
                raise AlgonautsDataError(f"{path} is a .npy file of unsupported version {version}: {_ORIGINAL}")
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read_header(file)
            if dtype != np.dtype(object) or shape != ():
                raise AlgonautsDataError(f"{path} holds a {dtype} array of shape {shape}, not a pickled dict of ROI "
                                         f"names: {_ORIGINAL}")
            array = _MappingUnpickler(file, path).load()
    except AlgonautsDataError:
        raise
    except Exception as exc:  # unpickling garbage can raise nearly anything
        raise AlgonautsDataError(f"{path} cannot be read ({_one_line(exc)}): {_ORIGINAL}") from exc
    mapping = array.item() if isinstance(array, np.ndarray) and array.shape == () else array
    if not (isinstance(mapping, dict) and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                                              and isinstance(v, str) for k, v in mapping.items())):
        raise AlgonautsDataError(f"{path} does not hold a dict of int labels to ROI names: {_ORIGINAL}")
    return {int(k): str(v) for k, v in mapping.items()}


@dataclass(frozen=True)
class Subject:
    """One subject's folder: its training images (sorted by file name = fMRI row order) and lazy readers; the test
    split's images when :func:`load_subject` was asked for them (``test=True``)."""

    name: str
    directory: Path
    images: tuple[Path, ...]
    test_images: tuple[Path, ...] = ()

    def nsd_ids(self, split: str = TRAINING) -> np.ndarray:
        """The NSD image ids (0-based, as in the file names) of the ``split``'s images, in row order."""
        return np.array([int(_NAMES[split].fullmatch(path.name).group(2)) for path in self.paths(split)],
                        dtype=np.int64)

    def paths(self, split: str = TRAINING) -> tuple[Path, ...]:
        return self.images if _split(split) == TRAINING else self.test_images

    def fsaverage_mask(self, hemisphere: str) -> np.ndarray:
        """The hemisphere's challenge vertices among the fsaverage vertices (:func:`read_fsaverage_mask`)."""
        return read_fsaverage_mask(self._path("roi_masks", f"{_hemi(hemisphere)}.all-vertices_fsaverage_space.npy"))

    def n_vertices(self, hemisphere: str) -> int:
        """Number of challenge-space vertices: the sum of the hemisphere's fsaverage mask."""
        return int(np.count_nonzero(self.fsaverage_mask(hemisphere)))

    def fmri(self, hemisphere: str, split: str = TRAINING) -> np.ndarray:
        """Responses of the ``split``'s images, float32 (n_images, n_vertices), memory-mapped when stored as float32;
        scanned for NaN/inf."""
        array, path = self._fmri(hemisphere, split)
        rows = max(1, _CHUNK_BYTES // max(1, array.shape[1] * array.itemsize))
        bad = np.zeros(array.shape[1], dtype=bool)
        for start in range(0, array.shape[0], rows):
            bad |= ~np.isfinite(array[start:start + rows]).all(axis=0)
        if bad.any():
            first = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
            raise AlgonautsDataError(f"{path} has NaN or inf values at {int(bad.sum())} of {bad.size} vertices "
                                     f"(first: {first}): {_ORIGINAL}")
        return array if array.dtype == np.float32 else array.astype(np.float32)

    def ncsnr(self, hemisphere: str) -> np.ndarray | None:
        """NSD's noise-ceiling SNR per challenge vertex (float64, >= 0), or None before ``noise-ceiling`` wrote it."""
        path = self._path(*NCSNR_DIR, f"{_hemi(hemisphere)}_ncsnr.npy")
        if not path.is_file():
            return None
        return self._per_vertex(path, hemisphere, "an ncsnr", 0, np.inf, "rerun `brainscore-plugins noise-ceiling`")

    def repetitions(self) -> np.ndarray | None:
        """Trials of each training image in the training sessions (1 to 3; int64, row order), or None before
        ``noise-ceiling`` wrote them."""
        path = self._path(*NCSNR_DIR, "repetitions.npy")
        if not path.is_file():
            return None
        counts = _load(path)
        if counts.shape != (len(self.images),) or not np.issubdtype(counts.dtype, np.integer) \
                or counts.min(initial=1) < 1 or counts.max(initial=1) > 3:
            raise AlgonautsDataError(f"{path} must hold one trial count (1 to 3) per training image "
                                     f"({len(self.images)}), not a {counts.dtype} array of shape {counts.shape}: "
                                     f"rerun `brainscore-plugins noise-ceiling`")
        return counts.astype(np.int64)

    def test_noise_ceiling(self, hemisphere: str) -> np.ndarray:
        """The organisers' noise ceiling of the test split per vertex, a fraction in [0, 1] (float64)."""
        path = self._path("test_split", "noise_ceiling", f"{_hemi(hemisphere)}_noise_ceiling.npy")
        if not path.is_file():
            raise AlgonautsDataError(f"{path} is missing: the test-split benchmarks need the organisers' test_split/"
                                     f"noise_ceiling/{{lh,rh}}_noise_ceiling.npy (from their challenge data "
                                     f"preparation), or score the development kit's held-out split instead")
        return self._per_vertex(path, hemisphere, "a noise ceiling", 0, 1, "a noise ceiling is a fraction in [0, 1] "
                                "(divide percent values by 100)")

    def rois(self, hemisphere: str) -> dict[str, dict[str, np.ndarray]]:
        """group -> {ROI name -> int64 indices of the challenge-space vertices with its label}; label 0 ('Unknown')
        left out, ROIs without vertices in this hemisphere kept with an empty index array."""
        hemisphere, n = _hemi(hemisphere), self.n_vertices(hemisphere)
        result = {}
        for group in ROI_GROUPS:
            mapping = read_mapping(self._path("roi_masks", f"mapping_{group}.npy"))
            path = self._path("roi_masks", f"{hemisphere}.{group}_challenge_space.npy")
            raw = _load(path)
            if raw.shape != (n,) or not np.issubdtype(raw.dtype, np.number) or not np.all(raw == np.round(raw)):
                raise AlgonautsDataError(f"{path} holds a {raw.dtype} array of shape {raw.shape} but {hemisphere} has "
                                         f"{n} vertices: it must hold one integer ROI label per vertex: {_ORIGINAL}")
            labels = raw.astype(np.int64)
            unnamed = sorted(set(np.unique(labels).tolist()) - set(mapping))
            if unnamed:
                raise AlgonautsDataError(f"{path} has labels {unnamed} that mapping_{group}.npy does not name (it "
                                         f"names {sorted(mapping)}): the two files must come from the same download")
            result[group] = {name: np.flatnonzero(labels == label) for label, name in sorted(mapping.items())
                             if label != 0}
        return result

    def _path(self, *parts: str) -> Path:
        return self.directory.joinpath(*parts)

    def _per_vertex(self, path: Path, hemisphere: str, what: str, low: float, high: float, fix: str) -> np.ndarray:
        """A file of one finite number in [low, high] per challenge vertex, as float64."""
        values, n = _load(path), self.n_vertices(hemisphere)
        if values.shape != (n,) or not np.issubdtype(values.dtype, np.number):
            raise AlgonautsDataError(f"{path} holds a {values.dtype} array of shape {values.shape} but {hemisphere} "
                                     f"has {n} vertices: it must hold {what} per vertex ({hemisphere} fsaverage mask "
                                     f"order)")
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            raise AlgonautsDataError(f"{path} has NaN or inf values at {int((~np.isfinite(values)).sum())} vertices: "
                                     f"it must hold {what} per vertex; {fix}")
        if values.min() < low or values.max() > high:
            raise AlgonautsDataError(f"{path} has values outside [{low}, {high}] (min {values.min():.4g}, max "
                                     f"{values.max():.4g}): {fix}")
        return values

    def _fmri(self, hemisphere: str, split: str = TRAINING) -> tuple[np.ndarray, Path]:
        """The memory-mapped responses with their shape checked against the images and the fsaverage mask."""
        hemisphere, split = _hemi(hemisphere), _split(split)
        path = self._path(f"{split}_split", f"{split}_fmri", f"{hemisphere}_{split}_fmri.npy")
        if not path.is_file():
            raise AlgonautsDataError(f"{path} is missing: the test-split benchmarks need the organisers' test_split/"
                                     f"test_fmri/{{lh,rh}}_test_fmri.npy (the challenge's test responses are not part "
                                     f"of its public download), or score the development kit's held-out split instead")
        array, images = _load(path, mmap_mode="r"), self.paths(split)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
            raise AlgonautsDataError(f"{path} holds a {array.dtype} array of shape {array.shape}, not a 2-D float "
                                     f"array (images x vertices): {_ORIGINAL}")
        if array.shape[0] != len(images):
            raise AlgonautsDataError(f"{path} has {array.shape[0]} rows but {split}_images holds {len(images)} "
                                     f"png files; there must be one row per {split} image (file-name order): "
                                     f"{_ORIGINAL}")
        n, other = self.n_vertices(hemisphere), HEMISPHERES[1 - HEMISPHERES.index(hemisphere)]
        if array.shape[1] != n:
            n_other = self.n_vertices(other)
            swapped = array.shape[1] == n_other != n
            fix = (f"that is {other}'s count, so the lh/rh files look swapped (a wrong hemisphere file): "
                   f"{path.name} must hold the {hemisphere} responses" if swapped else _ORIGINAL)
            raise AlgonautsDataError(f"{path} has {array.shape[1]} vertices but the {hemisphere}.all-vertices "
                                     f"fsaverage mask selects {n}; {fix}")
        return array, path


def _numbered(folder: Path, split: str) -> tuple[Path, ...]:
    """The split's png files, checked to be named and numbered as the challenge names them."""
    images = tuple(sorted(folder.glob("*.png"))) if folder.is_dir() else ()
    pattern, prefix = _NAMES[split], "train" if split == TRAINING else "test"
    misnamed = [path.name for path in images if not pattern.fullmatch(path.name)]
    if misnamed:
        raise AlgonautsDataError(f"{folder} holds {len(misnamed)} png files not named {prefix}-NNNN_nsd-NNNNN.png "
                                 f"(first: {', '.join(misnamed[:3])}): keep the challenge's image file names")
    if [int(pattern.fullmatch(path.name).group(1)) for path in images] != list(range(1, len(images) + 1)):
        raise AlgonautsDataError(f"{folder} is not numbered {prefix}-0001 ... {prefix}-{len(images):04d} without "
                                 f"gaps: the running index orders the fMRI rows, keep the challenge's image files")
    return images


def load_subject(name: str, data_dir: str | Path | None = None, test: bool = False) -> Subject:
    """A subject whose files, image names, array shapes, ROI labels and noise-ceiling inputs are checked (the
    responses are scanned for NaN/inf by :meth:`Subject.fmri`); with ``test``, its test split's images, responses and
    noise ceilings too."""
    if name not in SUBJECTS:
        raise AlgonautsDataError(f"unknown Algonauts 2023 subject {name!r}: choose one of {', '.join(SUBJECTS)}")
    root = resolve_root(data_dir)
    directory = root / name
    if not directory.is_dir():
        raise AlgonautsDataError(f"subject folder {directory} does not exist: {root} must hold the challenge's "
                                 f"subj01 ... subj08 folders ({FOLDER_NAME}); {_LAYOUT_LINE}")
    image_dir = directory / "training_split" / "training_images"
    has_images = image_dir.is_dir() and any(image_dir.glob("*.png"))
    missing = [] if has_images else ["training_split/training_images/*.png"]
    missing += [relative for relative in _required_files() if not (directory / relative).is_file()]
    if missing:
        raise AlgonautsDataError(f"{directory} is incomplete, missing: {', '.join(missing)}; {_LAYOUT_LINE}")
    test_images = _numbered(directory / "test_split" / "test_images", TEST) if test else ()
    if test and not test_images:
        raise AlgonautsDataError(f"{directory / 'test_split' / 'test_images'} holds no test-NNNN_nsd-NNNNN.png "
                                 f"images: keep the challenge's test_split folder")
    subject = Subject(name, directory, _numbered(image_dir, TRAINING), test_images)
    for hemisphere in HEMISPHERES:
        subject._fmri(hemisphere)
        subject.rois(hemisphere)
        subject.ncsnr(hemisphere)
        if test:
            subject._fmri(hemisphere, TEST)
            subject.test_noise_ceiling(hemisphere)
    subject.repetitions()
    return subject


def _required_files() -> list[str]:
    files = [f"training_split/training_fmri/{h}_training_fmri.npy" for h in HEMISPHERES]
    files += [f"roi_masks/{h}.all-vertices_fsaverage_space.npy" for h in HEMISPHERES]
    for group in ROI_GROUPS:
        files += [f"roi_masks/{h}.{group}_challenge_space.npy" for h in HEMISPHERES]
        files.append(f"roi_masks/mapping_{group}.npy")
    return files


def _split(split: str) -> str:
    if split not in _NAMES:
        raise ValueError(f"unknown split {split!r}: choose {TRAINING!r} or {TEST!r}")
    return split


def _hemi(hemisphere: str) -> str:
    if hemisphere not in HEMISPHERES:
        raise AlgonautsDataError(f"unknown hemisphere {hemisphere!r}: choose 'lh' or 'rh'")
    return hemisphere


def read_fsaverage_mask(path: str | Path) -> np.ndarray:
    """A ``{lh,rh}.all-vertices_fsaverage_space.npy`` as a boolean mask, checked to be 0/1 over every fsaverage
    vertex."""
    mask = _load(Path(path))
    if mask.shape != (FSAVERAGE_VERTICES,) or not np.isin(mask, (0, 1)).all():
        raise AlgonautsDataError(f"{path} must be a 0/1 mask of the {FSAVERAGE_VERTICES} fsaverage vertices, not "
                                 f"a {mask.dtype} array of shape {mask.shape}: {_ORIGINAL}")
    return mask > 0


def _load(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """A numeric ``.npy`` array, its header checked first: no object arrays, and no more data declared than the file
    holds (a 128-byte file may declare 2^33 elements)."""
    try:
        _check_header(path)
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except AlgonautsDataError:
        raise
    except (ValueError, OSError, EOFError, MemoryError) as exc:
        raise AlgonautsDataError(f"{path} cannot be read as a .npy array ({_one_line(exc)}): {_ORIGINAL}") from exc


def _check_header(path: Path) -> None:
    with path.open("rb") as file:
        version = npy_format.read_magic(file)
        read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise AlgonautsDataError(f"{path} is a .npy file of unsupported version {version}: {_ORIGINAL}")
        shape, _, dtype = read_header(file)
        offset = file.tell()
    if dtype.hasobject:
        raise AlgonautsDataError(f"{path} holds Python objects ({dtype}), not numbers: {_ORIGINAL} (it was not loaded)")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    available = path.stat().st_size - offset
    if declared > available:
        raise AlgonautsDataError(f"{path} declares {declared:,} bytes of {dtype} data of shape {shape} but holds "
                                 f"{available:,}: it is truncated or damaged; {_ORIGINAL}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
