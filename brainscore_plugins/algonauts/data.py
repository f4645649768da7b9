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
SPLIT_SEED = 5
TRAIN_PERCENT = 90
FOLDER_NAME = "algonauts_2023_challenge_data"

LAYOUT = f"""\
{FOLDER_NAME}/subj01 ... subj08/
  training_split/training_images/train-NNNN_nsd-NNNNN.png   (NNNN: 1-based running index, NNNNN: NSD id)
  training_split/training_fmri/{{lh,rh}}_training_fmri.npy    float (n_images, n_vertices)
  training_split/noise_ceiling/{{lh,rh}}_noise_ceiling.npy    optional: fraction in [0, 1] per vertex
  roi_masks/{{lh,rh}}.all-vertices_fsaverage_space.npy        0/1 mask of the {FSAVERAGE_VERTICES} fsaverage vertices
  roi_masks/{{lh,rh}}.<group>_challenge_space.npy             int ROI label per vertex (0: none)
  roi_masks/mapping_<group>.npy                             dict {{label: ROI name}}
  groups: {", ".join(ROI_GROUPS)}"""

_LAYOUT_LINE = ("expected layout: subjNN/training_split/training_images/train-NNNN_nsd-NNNNN.png, "
                "subjNN/training_split/training_fmri/{lh,rh}_training_fmri.npy, "
                "subjNN/roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy, "
                "subjNN/roi_masks/{lh,rh}.<group>_challenge_space.npy and subjNN/roi_masks/mapping_<group>.npy "
                f"for the groups {', '.join(ROI_GROUPS)}")
_IMAGE_NAME = re.compile(r"train-(\d{4})_nsd-(\d{5})\.png")
_ORIGINAL = "replace it with the file from the challenge's download"
_CHUNK_BYTES = 64 << 20


def split(n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """The development kit's (train, validation) image indices: ``np.random.seed(5)``, shuffle ``arange(n)``, first
    90 % (rounded) train. Uses its own ``RandomState``, never the global generator."""
    idxs = np.arange(n_images)
    np.random.RandomState(SPLIT_SEED).shuffle(idxs)
    num_train = int(np.round(n_images / 100 * TRAIN_PERCENT))
    return idxs[:num_train], idxs[num_train:]


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


class _MappingUnpickler(pickle.Unpickler):
    """Rebuilds a 0-d object array and nothing else: only numpy's array/dtype/scalar constructors are resolved."""

    _ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise AlgonautsDataError(f"{self.path} refers to {module}.{name}; a mapping file holds only a dict of ints "
                                     f"to names: {_ORIGINAL} (it was not loaded)")
        return super().find_class(module, name)


def read_mapping(path: str | Path) -> dict[int, str]:
    """A ``mapping_<group>.npy`` ({label: ROI name}, saved by ``np.save(dict)``) read without running pickled code."""
    path = Path(path)
    try:
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
    """One subject's folder: the training images (sorted by file name = fMRI row order) and lazy readers."""

    name: str
    directory: Path
    images: tuple[Path, ...]

    def nsd_ids(self) -> np.ndarray:
        return np.array([int(_IMAGE_NAME.fullmatch(path.name).group(2)) for path in self.images], dtype=np.int64)

    def fsaverage_mask(self, hemisphere: str) -> np.ndarray:
        """The hemisphere's challenge vertices among the fsaverage vertices (:func:`read_fsaverage_mask`)."""
        return read_fsaverage_mask(self._path("roi_masks", f"{_hemi(hemisphere)}.all-vertices_fsaverage_space.npy"))

    def n_vertices(self, hemisphere: str) -> int:
        """Number of challenge-space vertices: the sum of the hemisphere's fsaverage mask."""
        return int(np.count_nonzero(self.fsaverage_mask(hemisphere)))

    def fmri(self, hemisphere: str) -> np.ndarray:
        """Training responses, float32 (n_images, n_vertices), memory-mapped when stored as float32."""
        array, path = self._fmri(hemisphere)
        rows = max(1, _CHUNK_BYTES // max(1, array.shape[1] * array.itemsize))
        bad = np.zeros(array.shape[1], dtype=bool)
        for start in range(0, array.shape[0], rows):
            bad |= ~np.isfinite(array[start:start + rows]).all(axis=0)
        if bad.any():
            first = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
            raise AlgonautsDataError(f"{path} has NaN or inf values at {int(bad.sum())} of {bad.size} vertices "
                                     f"(first: {first}): {_ORIGINAL}")
        return array if array.dtype == np.float32 else array.astype(np.float32)

    def noise_ceiling(self, hemisphere: str) -> np.ndarray | None:
        """Per-vertex noise ceiling as a fraction in [0, 1] (float64), or None when the optional file is absent."""
        path = self._path("training_split", "noise_ceiling", f"{_hemi(hemisphere)}_noise_ceiling.npy")
        if not path.is_file():
            return None
        ceiling, n = _load(path), self.n_vertices(hemisphere)
        if ceiling.shape != (n,) or not np.issubdtype(ceiling.dtype, np.number):
            raise AlgonautsDataError(f"{path} holds a {ceiling.dtype} array of shape {ceiling.shape} but {hemisphere} "
                                     f"has {n} vertices: it must hold one number per vertex ({hemisphere} fsaverage "
                                     f"mask order)")
        ceiling = ceiling.astype(np.float64)
        if not np.isfinite(ceiling).all():
            raise AlgonautsDataError(f"{path} has NaN or inf values at {int((~np.isfinite(ceiling)).sum())} vertices: "
                                     f"a noise ceiling must be a finite fraction in [0, 1] per vertex")
        if ceiling.min() < 0 or ceiling.max() > 1:
            raise AlgonautsDataError(f"{path} has values outside [0, 1] (min {ceiling.min():.4g}, max "
                                     f"{ceiling.max():.4g}): a noise ceiling is a fraction in [0, 1] (divide percent "
                                     f"values by 100)")
        return ceiling

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

    def _fmri(self, hemisphere: str) -> tuple[np.ndarray, Path]:
        """The memory-mapped responses with their shape checked against the images and the fsaverage mask."""
        hemisphere = _hemi(hemisphere)
        path = self._path("training_split", "training_fmri", f"{hemisphere}_training_fmri.npy")
        array = _load(path, mmap_mode="r")
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
            raise AlgonautsDataError(f"{path} holds a {array.dtype} array of shape {array.shape}, not a 2-D float "
                                     f"array (images x vertices): {_ORIGINAL}")
        if array.shape[0] != len(self.images):
            raise AlgonautsDataError(f"{path} has {array.shape[0]} rows but training_images holds {len(self.images)} "
                                     f"png files; there must be one row per training image (file-name order): "
                                     f"{_ORIGINAL}")
        n, other = self.n_vertices(hemisphere), HEMISPHERES[1 - HEMISPHERES.index(hemisphere)]
        if array.shape[1] != n:
            n_other = self.n_vertices(other)
            swapped = array.shape[1] == n_other != n
            fix = (f"that is {other}'s count, so the lh/rh files look swapped (a wrong hemisphere file): "
                   f"{hemisphere}_training_fmri.npy must hold the {hemisphere} responses" if swapped else _ORIGINAL)
            raise AlgonautsDataError(f"{path} has {array.shape[1]} vertices but the {hemisphere}.all-vertices "
                                     f"fsaverage mask selects {n}; {fix}")
        return array, path


def load_subject(name: str, data_dir: str | Path | None = None) -> Subject:
    """A subject whose files, image names, array shapes, ROI labels and noise ceilings are checked (the responses are
    scanned for NaN/inf by :meth:`Subject.fmri`)."""
    if name not in SUBJECTS:
        raise AlgonautsDataError(f"unknown Algonauts 2023 subject {name!r}: choose one of {', '.join(SUBJECTS)}")
    root = resolve_root(data_dir)
    directory = root / name
    if not directory.is_dir():
        raise AlgonautsDataError(f"subject folder {directory} does not exist: {root} must hold the challenge's "
                                 f"subj01 ... subj08 folders ({FOLDER_NAME}); {_LAYOUT_LINE}")
    image_dir = directory / "training_split" / "training_images"
    images = tuple(sorted(image_dir.glob("*.png"))) if image_dir.is_dir() else ()
    missing = [] if images else ["training_split/training_images/*.png"]
    missing += [relative for relative in _required_files() if not (directory / relative).is_file()]
    if missing:
        raise AlgonautsDataError(f"{directory} is incomplete, missing: {', '.join(missing)}; {_LAYOUT_LINE}")
    misnamed = [path.name for path in images if not _IMAGE_NAME.fullmatch(path.name)]
    if misnamed:
        raise AlgonautsDataError(f"{image_dir} holds {len(misnamed)} png files not named train-NNNN_nsd-NNNNN.png "
                                 f"(first: {', '.join(misnamed[:3])}): keep the challenge's image file names")
    if [int(_IMAGE_NAME.fullmatch(path.name).group(1)) for path in images] != list(range(1, len(images) + 1)):
        raise AlgonautsDataError(f"{image_dir} is not numbered train-0001 ... train-{len(images):04d} without gaps: "
                                 f"the running index orders the fMRI rows, keep the challenge's image files")
    subject = Subject(name, directory, images)
    for hemisphere in HEMISPHERES:
        subject._fmri(hemisphere)
        subject.rois(hemisphere)
        subject.noise_ceiling(hemisphere)
    return subject


def _required_files() -> list[str]:
    files = [f"training_split/training_fmri/{h}_training_fmri.npy" for h in HEMISPHERES]
    files += [f"roi_masks/{h}.all-vertices_fsaverage_space.npy" for h in HEMISPHERES]
    for group in ROI_GROUPS:
        files += [f"roi_masks/{h}.{group}_challenge_space.npy" for h in HEMISPHERES]
        files.append(f"roi_masks/mapping_{group}.npy")
    return files


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
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise AlgonautsDataError(f"{path} cannot be read as a .npy array ({_one_line(exc)}): {_ORIGINAL}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
