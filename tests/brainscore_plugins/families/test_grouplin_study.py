"""GroupLin against its authors' own code (childmindresearch/algonauts23), re-implemented here from their scripts:
their seeded 85/10/5 % split, its overlap with the development kit's held-out images, their 256-then-224 evaluation
preprocessing, and their validation score (median R^2 over every subject's vertices) through the
``algonauts2023-lane2023val-direct`` benchmark on forged data in the challenge layout."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from sklearn.metrics import r2_score
from torchvision import transforms as T

from brainscore_plugins import catalog, families
from brainscore_plugins.algonauts import benchmark as algonauts, splits, synthetic_subjects
from brainscore_plugins.algonauts.benchmark import Algonauts2023
from brainscore_plugins.architectures import grouplin
from brainscore_plugins.preprocessing import ALGONAUTS23, preprocessing_for

SUBS = tuple(f"subj{i:02d}" for i in range(1, 9))
REAL_IMAGES = {"subj01": 9841, "subj02": 9841, "subj03": 9082, "subj04": 8779, "subj05": 9841, "subj06": 9082,
               "subj07": 9841, "subj08": 8779}  # training images per subject in the challenge data


def authors_generate_splits(num_samples, split_sizes, seed):
    """dataset/generate_splits.py's generate_splits, verbatim in substance."""
    assert sum(split_sizes) == 1.0, "split_sizes must sum to 1"
    split_lengths = np.asarray(split_sizes) * num_samples
    split_ends = np.round(np.cumsum(split_lengths)).astype(int)
    split_starts = np.concatenate([[0], split_ends[:-1]])
    rng = np.random.default_rng(seed)
    indices = rng.permutation(num_samples)
    return [np.sort(indices[start:end]) for start, end in zip(split_starts, split_ends)]


def authors_seed_hash(*args):
    return int(hashlib.md5(str(args).encode("utf-8")).hexdigest(), 16) % (2 ** 31)


@pytest.mark.parametrize("subject", SUBS)
def test_split_is_the_authors(subject):
    n = REAL_IMAGES[subject]
    expected = authors_generate_splits(n, [0.85, 0.1, 0.05],
                                       authors_seed_hash("generate_splits", "training-official", subject, 2023))
    ours = splits.lane2023(n, subject)
    for name, indices in zip(("train", "val", "testval"), expected):
        np.testing.assert_array_equal(ours[name], indices)
    assert sum(map(len, ours.values())) == n and len(np.unique(np.concatenate(list(ours.values())))) == n


# Dev-kit held-out images of each subject in GroupLin's train / val / testval split (the real image counts).
OVERLAP = {"subj01": (835, 105, 44), "subj02": (847, 85, 52), "subj03": (769, 103, 36), "subj04": (739, 78, 61),
           "subj05": (829, 102, 53), "subj06": (769, 87, 52), "subj07": (834, 108, 42), "subj08": (756, 82, 40)}


@pytest.mark.parametrize("subject", SUBS)
def test_overlap_of_the_devkit_heldout_images_with_grouplins_training(subject):
    """84-86 % of the held-out images trained GroupLin, 9-11 % chose its checkpoint: only the rest is scored."""
    n = REAL_IMAGES[subject]
    heldout = splits.devkit(n)[1]
    parts = splits.lane2023(n, subject)
    assert tuple(int(np.isin(heldout, parts[k]).sum()) for k in ("train", "val", "testval")) == OVERLAP[subject]
    nsd_ids = np.arange(n) * 7  # any distinct ids in row order
    seen = families.get("grouplin").nsd_seen(catalog.resolve("grouplin_phase1"), True)(subject, nsd_ids)
    assert np.isin(nsd_ids[heldout], seen).sum() == sum(OVERLAP[subject][:2])


def test_which_models_saw_which_images():
    """Both fMRI predictors saw train + val; as Brain-Score models only phase 2 (fine-tuned trunk) did."""
    seen = families.get("grouplin").nsd_seen
    assert seen(catalog.resolve("grouplin_phase1"), False) is None
    assert seen(catalog.resolve("grouplin_phase2"), False) is not None
    assert seen(catalog.resolve("grouplin_phase2"), True) is not None


def authors_val_transform(path: str) -> torch.Tensor:
    """generate_dataset.py (PIL bicubic 256 x 256, stored as PNG by the Hugging Face dataset, read back as a uint8
    tensor), then train_group_encoder.py's create_transform(train=False) with the trunk's timm data config."""
    image = Image.open(path).convert("RGB").resize((256, 256), resample=Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    stored = torch.from_numpy(np.array(Image.open(io.BytesIO(buffer.getvalue()))))
    config = timm.data.resolve_model_data_config(timm.create_model(grouplin.TRUNK, pretrained=False))
    img = stored.to(torch.float32) / 255.0
    img = torch.permute(img, (2, 0, 1)).contiguous()
    size = config["input_size"][1]
    transform = T.Compose([T.Resize(size, interpolation=timm.data.str_to_interp_mode(config["interpolation"]),
                                    antialias=True), T.CenterCrop(size), T.Normalize(config["mean"], config["std"])])
    return transform(img)


@pytest.mark.slow
def test_preprocessing_is_the_authors(tmp_path):
    """grouplin's default pipeline equals the authors' two resizes pixel for pixel (NSD's 425 px images)."""
    path = tmp_path / "nsd.png"
    Image.fromarray(synthetic_subjects.random_images(1, size=425, seed=4)[0]).save(path)
    entry = catalog.resolve("grouplin_phase1")
    family = families.get("grouplin")
    assert family.preprocessing == ALGONAUTS23
    ours = preprocessing_for(entry.resize, entry.crop, entry.interpolation, ALGONAUTS23,
                             *family.normalization(entry.arch))([str(path)])
    np.testing.assert_array_equal(ours[0], authors_val_transform(str(path)).numpy())
    once = preprocessing_for(entry.resize, entry.crop, entry.interpolation, "training-config",
                             *family.normalization(entry.arch))([str(path)])
    assert np.abs(once - ours).max() > 1e-3  # resizing once is not the same


N_IMAGES, CUT = 60, 100  # images per subject; subj08 lacks its first CUT lh vertices (as subj06/08 lack some)


class Predictor:
    """Group-space predictions: truth (zero outside a subject's vertices) + 0.6 x noise."""

    identifier = "fake-grouplin"

    def __init__(self, truth: dict):
        self.truth = truth

    def predict_fmri(self, paths, subject):
        rng = np.random.default_rng([len(paths), int(subject[-2:])])
        truth = np.stack([self.truth[p] for p in paths])
        return truth + 0.6 * rng.standard_normal(truth.shape).astype(np.float32)


@pytest.fixture(scope="module")
def eight_subjects(tmp_path_factory):
    """Eight subjects in the challenge layout whose vertices make up the 39,548 group vertices (subj08 with fewer)."""
    root = tmp_path_factory.mktemp("algonauts-8")
    counts = {"lh": 19004, "rh": 20544}
    group_truth = {}
    for index, subject in enumerate(SUBS):
        rng = np.random.default_rng(index)
        fmri = {h: rng.standard_normal((N_IMAGES, n)).astype(np.float32) for h, n in counts.items()}
        images = synthetic_subjects.random_images(N_IMAGES, size=32, seed=index)
        folder = synthetic_subjects.write_subject(root, subject, images, fmri, seed=0)
        if subject == "subj08":  # drop CUT lh vertices: mask, responses and ROI labels
            masks = folder / "roi_masks"
            mask = np.load(masks / "lh.all-vertices_fsaverage_space.npy")
            mask[np.flatnonzero(mask)[:CUT]] = 0
            np.save(masks / "lh.all-vertices_fsaverage_space.npy", mask)
            fmri["lh"] = fmri["lh"][:, CUT:]
            np.save(folder / "training_split/training_fmri/lh_training_fmri.npy", fmri["lh"])
            for path in masks.glob("lh.*_challenge_space.npy"):
                np.save(path, np.load(path)[CUT:])
        for i, path in enumerate(sorted((folder / "training_split/training_images").glob("*.png"))):
            own = np.concatenate([fmri["lh"][i], fmri["rh"][i]])
            group_truth[str(path)] = own if subject != "subj08" else np.concatenate([np.zeros(CUT, np.float32), own])
    return root, group_truth


def authors_validation_score(root, truth: dict, predictor) -> float:
    """train_group_encoder.py's validate(): per subject (SUBS order) the val images' group-space targets (zero where
    the subject has no vertex) and predictions, raw_multi_r2, stacked, np.nanmedian."""
    target_scores = {}
    for sub in SUBS:
        paths = sorted(str(p) for p in (root / sub / "training_split/training_images").glob("*.png"))
        indices = authors_generate_splits(len(paths), [0.85, 0.1, 0.05],
                                          authors_seed_hash("generate_splits", "training-official", sub, 2023))[1]
        target = np.stack([truth[paths[i]] for i in indices])
        pred = predictor.predict_fmri([paths[i] for i in indices], sub)
        mask = np.any(target != 0, axis=0)
        target_scores[sub] = np.where(mask, r2_score(target, pred, multioutput="raw_values"), np.nan)
    return float(np.nanmedian(np.stack([target_scores[sub] for sub in SUBS])))


def test_validation_benchmark_is_the_authors_score(eight_subjects):
    """``algonauts2023-lane2023val-direct`` = the authors' "Val score" (20.4 % / 20.9 % in their table) computed their
    way, in percent; their validation images are scored although GroupLin selected on them: the name says so."""
    root, truth = eight_subjects
    predictor = Predictor(truth)
    predictor.nsd_seen = lambda subject, ids: ids  # saw everything: the named selection set is scored regardless
    score = Algonauts2023("algonauts2023-lane2023val-direct", data_dir=root, progress=False)(predictor)
    expected = authors_validation_score(root, truth, predictor)
    assert 0.1 < expected < 0.9
    np.testing.assert_allclose(float(score), 100 * expected, rtol=1e-6)
    assert score.attrs["metric"] == "median_r2" and np.isnan(float(score.attrs["ceiling"]))
    assert score.attrs["scored_images"] == {sub: 6 for sub in SUBS}
    assert "selected their checkpoints" in score.attrs["split"]
    one = Algonauts2023("algonauts2023.subj08-lane2023val-direct", data_dir=root, progress=False)(predictor)
    assert one.attrs["roi_scores"].query("group == 'all' and hemisphere == 'lh'").n_vertices.item() == 19004 - CUT
    assert algonauts.parse("algonauts2023.subj08-lane2023val-direct").subjects == ("subj08",)
