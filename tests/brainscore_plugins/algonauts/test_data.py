"""The Algonauts 2023 data reader against synthetic subjects in the challenge layout, and its one-line errors."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from numpy.lib import format as npy_format

from brainscore_plugins import settings
from brainscore_plugins.algonauts import data, splits, synthetic_subjects
from brainscore_plugins.algonauts.data import load_subject, read_mapping, resolve_root
from brainscore_plugins.errors import AlgonautsDataError

N_IMAGES, N_VERTICES = 12, {"lh": 40, "rh": 50}


def make_subject(root, name="subj01", seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    fmri = {h: rng.standard_normal((N_IMAGES, n)).astype(np.float32) for h, n in N_VERTICES.items()}
    images = synthetic_subjects.random_images(N_IMAGES, size=16, seed=seed)
    return synthetic_subjects.write_subject(root, name, images, fmri, seed=seed, **kwargs), fmri


@pytest.fixture
def root(tmp_path):
    return tmp_path / data.FOLDER_NAME


@pytest.fixture
def subject(root):
    """A written subj01 and its responses."""
    return make_subject(root)


def raises(match_words, func, *args):
    with pytest.raises(AlgonautsDataError) as info:
        func(*args)
    message = str(info.value)
    assert "\n" not in message
    for word in match_words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def test_round_trip(root, subject):
    directory, fmri = subject
    ceiling = {h: np.linspace(0, 1, n) for h, n in N_VERTICES.items()}
    ncsnr = {h: np.linspace(0, 2, n) for h, n in N_VERTICES.items()}
    test_fmri = {h: np.arange(2 * n, dtype=np.float32).reshape(2, n) for h, n in N_VERTICES.items()}
    repetitions = np.arange(N_IMAGES) % 3 + 1
    synthetic_subjects.write_subject(root, "subj01", None, fmri, ncsnr=ncsnr, repetitions=repetitions,
                                     test_fmri=test_fmri, test_noise_ceiling=ceiling)
    loaded = load_subject("subj01", root, test=True)
    assert loaded.directory == directory
    assert [p.name for p in loaded.images] == sorted(p.name for p in loaded.images)
    assert len(loaded.images) == N_IMAGES and loaded.images[0].name.startswith("train-0001_nsd-")
    assert loaded.nsd_ids().tolist() == [int(p.stem[-5:]) for p in loaded.images]
    assert len(set(loaded.nsd_ids().tolist())) == N_IMAGES
    assert [p.name[:10] for p in loaded.test_images] == ["test-0001_", "test-0002_"]
    assert not set(loaded.nsd_ids("test")) & set(loaded.nsd_ids())
    np.testing.assert_array_equal(loaded.repetitions(), repetitions)
    for hemisphere, n in N_VERTICES.items():
        assert loaded.n_vertices(hemisphere) == n
        responses = loaded.fmri(hemisphere)
        assert isinstance(responses, np.memmap) and responses.dtype == np.float32
        np.testing.assert_array_equal(responses, fmri[hemisphere])
        np.testing.assert_allclose(loaded.test_noise_ceiling(hemisphere), ceiling[hemisphere], atol=1e-7)
        np.testing.assert_allclose(loaded.ncsnr(hemisphere), ncsnr[hemisphere], atol=1e-6)
        np.testing.assert_array_equal(loaded.fmri(hemisphere, "test"), test_fmri[hemisphere])
        rois = loaded.rois(hemisphere)
        assert tuple(rois) == data.ROI_GROUPS
        for group, by_name in rois.items():
            labels = np.load(directory / "roi_masks" / f"{hemisphere}.{group}_challenge_space.npy")
            assert list(by_name) == list(synthetic_subjects.ROI_NAMES[group])
            for label, name in enumerate(synthetic_subjects.ROI_NAMES[group], 1):
                assert by_name[name].dtype == np.int64
                np.testing.assert_array_equal(by_name[name], np.where(labels == label)[0])
                assert by_name[name].size > 0 or (hemisphere, group, name) == ("rh", *synthetic_subjects.EMPTY_RH_ROI)
    assert loaded.rois("rh")["floc-faces"]["aTL-faces"].size == 0


def test_fsaverage_labels_match_the_mask(subject):
    directory = subject[0] / "roi_masks"
    mask = np.load(directory / "lh.all-vertices_fsaverage_space.npy")
    challenge = np.load(directory / "lh.streams_challenge_space.npy")
    fsaverage = np.load(directory / "lh.streams_fsaverage_space.npy")
    assert mask.shape == fsaverage.shape == (data.FSAVERAGE_VERTICES,)
    np.testing.assert_array_equal(fsaverage[mask == 1], challenge)
    assert not fsaverage[mask == 0].any()


def test_images_first_then_responses(root):
    images = synthetic_subjects.random_images(N_IMAGES, size=16, seed=3)
    paths = synthetic_subjects.write_images(root, "subj02", images, nsd_ids=np.arange(100, 100 + N_IMAGES))
    assert [p.name for p in paths][:2] == ["train-0001_nsd-00100.png", "train-0002_nsd-00101.png"]
    responses = images.reshape(N_IMAGES, -1)[:, :30].astype(np.float32)
    synthetic_subjects.write_subject(root, "subj02", None, {"lh": responses, "rh": responses[:, :20]})
    loaded = load_subject("subj02", root)
    assert loaded.nsd_ids().tolist() == list(range(100, 100 + N_IMAGES))
    np.testing.assert_array_equal(loaded.fmri("lh"), responses)
    assert loaded.ncsnr("lh") is None and loaded.repetitions() is None and loaded.test_images == ()
    raises(["test_split/test_fmri", "held-out split"], loaded.fmri, "lh", "test")
    raises(["test_split/noise_ceiling", "held-out split"], loaded.test_noise_ceiling, "lh")


def test_memmap_responses_are_written(root, tmp_path):
    source = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float64, shape=(N_IMAGES, 30))
    source[:] = np.arange(source.size).reshape(source.shape)
    images = synthetic_subjects.random_images(N_IMAGES, 16)
    synthetic_subjects.write_subject(root, "subj03", images, {"lh": source, "rh": source})
    np.testing.assert_array_equal(load_subject("subj03", root).fmri("rh"), source.astype(np.float32))


def test_random_images():
    images = synthetic_subjects.random_images(5, size=32, seed=1)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, synthetic_subjects.random_images(5, size=32, seed=1))
    assert images.std(axis=(1, 2, 3)).min() > 20 and not np.array_equal(images[0], images[1])
    assert np.abs(np.diff(images.astype(int), axis=1)).mean() < 20  # smooth: neighbours close


@pytest.mark.parametrize("n", [1, 10, 101, 9841])
def test_split_is_the_devkit_split(n):
    state = np.random.get_state()
    try:
        np.random.seed(5)
        reference = np.arange(n)
        np.random.shuffle(reference)
        expected = np.arange(n)
        np.random.RandomState(5).shuffle(expected)
        np.testing.assert_array_equal(expected, reference)  # RandomState(5).shuffle == seed(5); np.random.shuffle
        num_train = int(np.round(n / 100 * 90))
        sentinel = np.random.get_state()[1].copy()
        train, validation = splits.devkit(n)
        np.testing.assert_array_equal(np.random.get_state()[1], sentinel)  # the global generator is untouched
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(train, reference[:num_train])
    np.testing.assert_array_equal(validation, reference[num_train:])
    assert len(train) == num_train and np.array_equal(np.sort(np.concatenate([train, validation])), np.arange(n))
    if n == 9841:
        assert (len(train), len(validation)) == (8857, 984)


def test_read_mapping(tmp_path):
    path = tmp_path / "mapping_floc-faces.npy"
    np.save(path, synthetic_subjects.mappings()["floc-faces"])
    assert read_mapping(path) == {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"}
    np.save(path, {np.int64(1): np.str_("V1v")})
    assert read_mapping(path) == {1: "V1v"}


class _System:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w')",)


@pytest.mark.parametrize("payload", [_System, _Eval])
def test_read_mapping_refuses_code(tmp_path, payload):
    path, marker = tmp_path / "mapping_streams.npy", tmp_path / "executed"
    payload.marker = marker
    with path.open("wb") as file:
        npy_format.write_array_header_1_0(file, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(payload(), file, protocol=3)
    raises([str(path), "refers to", "a mapping file holds only a dict of ints to names"], read_mapping, path)
    assert not marker.exists()


def _object_scalar(value):
    array = np.empty((), dtype=object)
    array[()] = value
    return array


@pytest.mark.parametrize("value, words", [
    (np.arange(3), ["int64 array of shape (3,)"]),
    (np.array(["V1v"], dtype=object), ["object array of shape (1,)"]),
    ({"one": "V1v"}, ["dict of int labels"]),
    ({1: 2}, ["dict of int labels"]),
    ({True: "V1v"}, ["dict of int labels"]),
    (_object_scalar([1, 2]), ["dict of int labels"]),
])
def test_read_mapping_rejects_other_contents(tmp_path, value, words):
    path = tmp_path / "mapping_streams.npy"
    np.save(path, value, allow_pickle=True)
    raises([str(path), *words], read_mapping, path)


def test_read_mapping_truncated(tmp_path):
    path = tmp_path / "mapping_streams.npy"
    np.save(path, synthetic_subjects.mappings()["streams"])
    path.write_bytes(path.read_bytes()[:-20])
    raises([str(path), "cannot be read"], read_mapping, path)


def test_resolve_root(tmp_path, root, subject, monkeypatch):
    monkeypatch.delenv(settings.ALGONAUTS, raising=False)
    raises(["pass data_dir=", settings.ALGONAUTS, "subj01 ... subj08"], resolve_root)
    assert resolve_root(root) == root
    assert resolve_root(tmp_path) == root  # the parent of algonauts_2023_challenge_data
    monkeypatch.setenv(settings.ALGONAUTS, str(tmp_path))
    assert resolve_root() == root
    assert load_subject("subj01").directory == root / "subj01"
    monkeypatch.setenv(settings.ALGONAUTS, str(tmp_path / "nowhere"))
    raises([str(tmp_path / "nowhere"), settings.ALGONAUTS, "does not exist"], resolve_root)
    raises(["data_dir", "does not exist"], resolve_root, tmp_path / "nowhere")


def test_unknown_and_missing_subject(root, subject):
    raises(["'subj9'", "subj01", "subj08"], load_subject, "subj9", root)
    raises([str(root / "subj02"), "does not exist", "expected layout"], load_subject, "subj02", root)
    raises(["'left'", "'lh' or 'rh'"], load_subject("subj01", root).fmri, "left")


def test_missing_files_are_all_listed(root, subject):
    directory = subject[0]
    for relative in ("training_split/training_fmri/rh_training_fmri.npy", "roi_masks/mapping_floc-words.npy",
                     "roi_masks/lh.streams_challenge_space.npy"):
        (directory / relative).unlink()
    for image in (directory / "training_split" / "training_images").iterdir():
        image.unlink()
    raises(["training_split/training_images/*.png", "training_split/training_fmri/rh_training_fmri.npy",
            "roi_masks/mapping_floc-words.npy", "roi_masks/lh.streams_challenge_space.npy", "expected layout"],
           load_subject, "subj01", root)


def test_image_names(root, subject):
    images = subject[0] / "training_split" / "training_images"
    first = sorted(images.glob("*.png"))[2]
    first.rename(images / "image3.png")
    raises(["image3.png", "train-NNNN_nsd-NNNNN.png"], load_subject, "subj01", root)
    (images / "image3.png").rename(images / "train-0099_nsd-00001.png")
    raises(["train-0001 ... train-0012", "without gaps"], load_subject, "subj01", root)


def _fmri_path(subject, hemisphere="lh"):
    return subject[0] / "training_split" / "training_fmri" / f"{hemisphere}_training_fmri.npy"


@pytest.mark.parametrize("array, words", [
    (np.zeros(N_IMAGES, dtype=np.float32), ["shape (12,)", "2-D float"]),
    (np.zeros((N_IMAGES, 40), dtype=np.int16), ["int16", "2-D float"]),
    (np.zeros((N_IMAGES - 1, 40), dtype=np.float32), ["11 rows", "training_images holds 12 png files"]),
])
def test_fmri_shape(root, subject, array, words):
    np.save(_fmri_path(subject), array)
    raises([str(_fmri_path(subject)), *words], load_subject, "subj01", root)


def test_fmri_vertex_count(root, subject):
    np.save(_fmri_path(subject), np.zeros((N_IMAGES, 41), dtype=np.float32))
    message = raises(["41 vertices", "lh.all-vertices", "selects 40"], load_subject, "subj01", root)
    assert "swapped" not in message


def test_fmri_swapped(root, subject):
    lh, rh = subject[1]["lh"], subject[1]["rh"]
    np.save(_fmri_path(subject, "lh"), rh)
    np.save(_fmri_path(subject, "rh"), lh)
    raises([str(_fmri_path(subject, "lh")), "50 vertices", "selects 40", "swapped", "wrong hemisphere"],
           load_subject, "subj01", root)


def test_fmri_nan_is_found_across_chunks(root, subject, monkeypatch):
    responses = subject[1]["rh"].copy()
    responses[1, 17], responses[9, 5], responses[10, 17] = np.nan, np.inf, -np.inf
    np.save(_fmri_path(subject, "rh"), responses)
    monkeypatch.setattr(data, "_CHUNK_BYTES", 2 * 50 * 4)  # two rows a chunk
    loaded = load_subject("subj01", root)  # the scan is left to fmri()
    np.testing.assert_array_equal(loaded.fmri("lh"), subject[1]["lh"])
    raises([str(_fmri_path(subject, "rh")), "NaN", "at 2 of 50 vertices", "first: 5, 17"], loaded.fmri, "rh")


def test_float64_fmri_is_returned_as_float32(root, subject):
    np.save(_fmri_path(subject), subject[1]["lh"].astype(np.float64))
    responses = load_subject("subj01", root).fmri("lh")
    assert responses.dtype == np.float32
    np.testing.assert_array_equal(responses, subject[1]["lh"])


def test_roi_labels(root, subject):
    masks = subject[0] / "roi_masks"
    path = masks / "rh.floc-faces_challenge_space.npy"
    np.save(path, np.zeros(49, dtype=np.int32))
    raises([str(path), "shape (49,)", "rh has 50 vertices"], load_subject, "subj01", root)
    labels = np.zeros(50, dtype=np.int32)
    labels[3] = 9
    np.save(path, labels)
    raises([str(path), "labels [9]", "mapping_floc-faces.npy"], load_subject, "subj01", root)
    np.save(path, labels.astype(np.float64) / 2)
    raises([str(path), "integer ROI label"], load_subject, "subj01", root)
    np.save(path, np.where(labels == 9, 2, labels).astype(np.float32))  # real files may store labels as floats
    np.testing.assert_array_equal(load_subject("subj01", root).rois("rh")["floc-faces"]["FFA-1"], [3])


def test_fsaverage_mask(root, subject):
    path = subject[0] / "roi_masks" / "lh.all-vertices_fsaverage_space.npy"
    np.save(path, np.ones(1000))
    raises([str(path), "0/1 mask", "shape (1000,)"], load_subject, "subj01", root)


@pytest.mark.parametrize("relative, values, words", [
    ("test_split/noise_ceiling/lh_noise_ceiling.npy", np.full(39, 0.5), ["shape (39,)", "lh has 40 vertices"]),
    ("test_split/noise_ceiling/lh_noise_ceiling.npy", np.full(40, 50.0), ["outside [0, 1]", "max 50",
                                                                          "divide percent"]),
    ("test_split/noise_ceiling/lh_noise_ceiling.npy", np.r_[np.nan, np.full(39, 0.5)], ["NaN or inf", "1 vertices"]),
    ("training_split/noise_ceiling/lh_ncsnr.npy", np.full(40, -1.0), ["outside [0, inf]", "noise-ceiling"]),
    ("training_split/noise_ceiling/repetitions.npy", np.full(N_IMAGES, 4), ["1 to 3", "noise-ceiling"]),
])
def test_noise_ceiling_inputs(root, subject, relative, values, words):
    test_fmri = {h: np.zeros((2, n), np.float32) for h, n in N_VERTICES.items()}
    good = {h: np.full(n, 0.5) for h, n in N_VERTICES.items()}
    synthetic_subjects.write_subject(root, "subj01", None, subject[1], test_fmri=test_fmri, test_noise_ceiling=good)
    (subject[0] / relative).parent.mkdir(parents=True, exist_ok=True)
    np.save(subject[0] / relative, values)
    raises([str(subject[0] / relative), *words], load_subject, "subj01", root, True)


@pytest.mark.parametrize("relative", ["training_split/training_fmri/rh_training_fmri.npy",
                                      "roi_masks/rh.all-vertices_fsaverage_space.npy",
                                      "roi_masks/lh.prf-visualrois_challenge_space.npy",
                                      "roi_masks/mapping_floc-places.npy"])
def test_corrupt_npy(root, subject, relative):
    path = subject[0] / relative
    path.write_bytes(path.read_bytes()[:100])
    raises([str(path), "cannot be read", "replace it"], load_subject, "subj01", root)


def test_pickled_array_is_not_loaded(root, subject):
    path = subject[0] / "roi_masks" / "lh.floc-bodies_challenge_space.npy"
    np.save(path, np.array([None] * 40, dtype=object), allow_pickle=True)
    raises([str(path), "holds Python objects", "(it was not loaded)"], load_subject, "subj01", root)


MAPPING_BOMB = """
import pickle, resource, sys
import numpy as np
from numpy.lib import format as npy_format
from brainscore_plugins.algonauts.data import read_mapping
from brainscore_plugins.errors import AlgonautsDataError

class Bomb:  # what np.save(dict) pickles, with a state declaring 150 million elements
    def __reduce__(self):
        return (np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                (1, (150_000_000,), np.dtype(object), False, []))

path = sys.argv[1]
with open(path, "wb") as file:
    npy_format.write_array_header_1_0(file, {"descr": "|O", "fortran_order": False, "shape": ()})
    pickle.dump(Bomb(), file, protocol=3)
try:
    read_mapping(path)
except AlgonautsDataError as error:
    print(error)
try:  # this process's peak (ru_maxrss would count the forking parent's pages on Linux)
    print(int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024)
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1 << 20 if sys.platform == "darwin" else 1024))
"""


def test_a_mapping_declaring_a_huge_array_is_refused_before_allocation(tmp_path, repo):
    import subprocess
    import sys
    path = tmp_path / "mapping_streams.npy"
    process = subprocess.run([sys.executable, "-c", MAPPING_BOMB, str(path)], capture_output=True, text=True,
                             cwd=repo, timeout=300)
    message, peak_mb = process.stdout.strip().splitlines()
    assert message.startswith(f"{path} cannot be read") and "declares shape (150000000,)" in message, process.stderr
    assert int(peak_mb) < 600  # numpy would allocate 1.2 GB of object pointers first


def test_a_hostile_global_name_is_escaped_in_the_message(tmp_path):
    path = tmp_path / "mapping_streams.npy"
    with path.open("wb") as file:
        npy_format.write_array_header_1_0(file, {"descr": "|O", "fortran_order": False, "shape": ()})
        file.write(b"\x80\x03cnumpy\x1b[31m\nrun\nq\x00.")  # GLOBAL 'numpy<ESC>[31m' 'run'
    with pytest.raises(AlgonautsDataError) as raised:
        read_mapping(path)
    message = str(raised.value)
    assert "refers to 'numpy\\x1b[31m'.'run'" in message and "\x1b" not in message and "\n" not in message
    path.write_bytes(b"\x00" * (2 << 20))
    raises([str(path), "2,097,152 bytes, not a mapping"], read_mapping, path)


@pytest.mark.parametrize("descr, shape, words", [
    ("|b1", (2 ** 33,), ["declares 8,589,934,592 bytes of bool data of shape (8589934592,) but holds 0"]),
    ("<f4", (10, 10), ["declares 400 bytes", "but holds 16: it is truncated or damaged"]),
    ("|O", (3,), ["holds Python objects (object), not numbers"]),
])
def test_a_numeric_file_declaring_more_than_it_holds_is_refused(tmp_path, descr, shape, words):
    from brainscore_plugins.algonauts.data import read_fsaverage_mask
    path = tmp_path / "lh.all-vertices_fsaverage_space.npy"
    with path.open("wb") as file:
        npy_format.write_array_header_1_0(file, {"descr": descr, "fortran_order": False, "shape": shape})
        file.write(b"\x00" * (16 if descr == "<f4" else 0))
    raises([str(path), *words], read_fsaverage_mask, path)
