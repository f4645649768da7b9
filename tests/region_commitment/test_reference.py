"""PCA reference sets: Brain-Score's ImageNet images, an ImageNet validation folder, the built-in fallback."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainscore_plugins import synthetic_recordings
from region_commitment import CommitmentError, digests, reference as ref, settings as commitment_settings


@pytest.fixture
def brainscore_env(monkeypatch, tmp_path):
    monkeypatch.delenv(commitment_settings.REFERENCE_ENV)
    monkeypatch.setenv("MT_HOME", str(tmp_path / "mt_home"))
    monkeypatch.delenv("MT_IMAGENET_PATH", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        paths.append(folder / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(paths[-1])
    return [str(p) for p in paths]


@pytest.mark.slow
@pytest.mark.parametrize("n", [100, 1000, 1001])
def test_indices_and_images_are_brainscores_own(n, brainscore_env, tiny_images):
    """Brain-Score's own ``_get_imagenet_val`` on a forged file in its layout reads our indices, and the default
    reference set is its images (from ``$MT_HOME/imagenet2012.hdf5``)."""
    from brainscore_vision.model_helpers.activations.pca import _get_imagenet_val
    synthetic_recordings.imagenet_hdf5(brainscore_env / "mt_home" / "imagenet2012.hdf5", tiny_images, n, size=16)
    theirs = _get_imagenet_val(n)
    assert [Path(p).name for p in theirs] == [f"{i}.png" for i in ref.imagenet_val_indices(n)]
    reference = ref.reference_images(None, brainscore_env / "cache", n=n)
    assert reference.paths == theirs
    assert reference.provenance["kind"] == "brainscore-imagenet" and reference.provenance["n"] == n
    assert reference.provenance["digest"] == digests.files(theirs)


def test_unreachable_default_falls_back_to_the_builtin_set_with_a_warning(brainscore_env, monkeypatch):
    from brainscore_vision.model_helpers.utils import s3

    def offline(*args, **kwargs):
        raise ConnectionError("no network")
    monkeypatch.setattr(s3, "download_file", offline)
    with pytest.warns(UserWarning, match="neither cached at .*imagenet2012.hdf5 nor downloadable.*built-in"):
        reference = ref.reference_images(None, brainscore_env / "cache", n=12)
    assert reference.provenance["kind"] == "builtin" and len(reference.paths) == 12
    assert not (brainscore_env / "mt_home" / "imagenet2012.hdf5").exists()  # nothing half-downloaded left behind
    assert not list((brainscore_env / "mt_home").glob("*.tmp*"))
    with pytest.raises(ConnectionError):  # asked for Brain-Score's images explicitly: no silent fallback
        ref.reference_images("brainscore", brainscore_env / "cache", n=12)


def test_a_broken_file_falls_back_and_other_errors_surface(brainscore_env, monkeypatch):
    from botocore.exceptions import EndpointConnectionError
    from brainscore_vision.model_helpers.utils import s3

    (brainscore_env / "mt_home").mkdir()
    (brainscore_env / "mt_home" / "imagenet2012.hdf5").write_text("not an hdf5 file")
    with pytest.warns(UserWarning, match=r"nor downloadable \(OSError"):
        assert ref.reference_images(None, brainscore_env / "cache", n=12).provenance["kind"] == "builtin"
    (brainscore_env / "mt_home" / "imagenet2012.hdf5").unlink()

    def unreachable(*args, **kwargs):  # what botocore raises offline
        raise EndpointConnectionError(endpoint_url="https://brain-score-models.invalid")
    monkeypatch.setattr(s3, "download_file", unreachable)
    with pytest.warns(UserWarning, match=r"nor downloadable \(EndpointConnectionError"):
        ref.reference_images(None, brainscore_env / "cache", n=12)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug, not an unreachable file")
    monkeypatch.setattr(s3, "download_file", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        ref.reference_images(None, brainscore_env / "cache", n=12)


def test_builtin_set_is_deterministic_and_diverse(tmp_path):
    first = ref.reference_images("builtin", tmp_path / "a", n=30)
    second = ref.reference_images("builtin", tmp_path / "b", n=30)
    assert first.provenance["digest"] == second.provenance["digest"]
    assert len(ref._source_photographs()) >= 3
    arrays = [np.asarray(Image.open(p)) for p in first.paths]
    assert len({a.tobytes() for a in arrays}) == 30


def test_imagenet_validation_folder_gives_brainscores_one_per_class_selection(tmp_path, tiny_images):
    val = tmp_path / "val"
    for c in range(ref.IMAGENET_CLASSES):
        folder = val / f"n{c:08d}"
        folder.mkdir(parents=True)
        for j in (3, 1):  # written out of order: selection is by sorted name
            (folder / f"ILSVRC2012_val_{c * 10 + j:08d}.JPEG").write_bytes(Path(tiny_images[j]).read_bytes())
    reference = ref.reference_images(str(val), tmp_path / "cache", n=1001)
    assert reference.paths[:2] == [str(val / "n00000000" / "ILSVRC2012_val_00000001.JPEG"),
                                   str(val / "n00000001" / "ILSVRC2012_val_00000011.JPEG")]
    assert reference.paths[-1] == str(val / "n00000000" / "ILSVRC2012_val_00000003.JPEG")  # entry 50 * 0 + 1
    assert "one per class" in reference.provenance["selection"]
    with pytest.raises(CommitmentError, match="fewer images than Brain-Score's selection of 3000"):
        ref.reference_images(str(val), tmp_path / "cache", n=3000)


def test_plain_folder_and_bad_folders(tmp_path, tiny_images):
    reference = ref.reference_images(str(Path(tiny_images[0]).parent), tmp_path, n=5)
    assert reference.paths == sorted(tiny_images)[:5] and reference.provenance["selection"].startswith("first")
    with pytest.raises(FileNotFoundError, match="does not exist; pass a folder of images, 'brainscore' or"):
        ref.reference_images(str(tmp_path / "missing"), tmp_path, n=5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No images"):
        ref.reference_images(str(tmp_path / "empty"), tmp_path, n=5)


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "10", 10 ** 8, 2 * 10 ** 5])
def test_a_count_outside_the_sources_images_is_refused_before_any_image_is_read_or_written(n, tmp_path, tiny_images,
                                                                                           brainscore_env):
    folder = str(Path(tiny_images[0]).parent)
    for source in ("builtin", "brainscore", None, folder):
        with pytest.raises(CommitmentError, match=r"n_components=.* is not a whole number from 1 to"):
            ref.reference_images(source, tmp_path / "cache", n=n)
    assert not (tmp_path / "cache").exists() and not (brainscore_env / "mt_home").exists()  # nothing written


def test_a_plain_folder_gives_at_most_its_images(tmp_path, tiny_images):
    folder = str(Path(tiny_images[0]).parent)
    assert len(ref.reference_images(folder, tmp_path, n=7).paths) == 7
    with pytest.raises(CommitmentError, match=r"n_components=8 is not a whole number from 1 to 7, the reference "
                                              r"images the folder .*tiny.* holds"):
        ref.reference_images(folder, tmp_path, n=8)
