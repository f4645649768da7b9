"""The held-out split's noise ceiling computed as the challenge organisers computed the test split's
(gifale95/algonauts_2023 challenge_data_preparation.py, re-implemented here): NSD's design forged at full size, its
ncsnr surfaces written as FreeSurfer MGH files, the repetition counts and ceilings compared with the organisers' loop,
and the command line."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import savemat

from brainscore_plugins import errors, settings
from brainscore_plugins.algonauts import data, noise_ceiling, splits, synthetic_subjects

SUBJECT, VERTICES = "subj01", {"lh": 30, "rh": 40}


def write_mgh(path, values: np.ndarray) -> None:
    """FreeSurfer's MGH layout: big-endian int32 version, width, height, depth, frames, type (3: float), dof, int16
    goodRASflag, header padded to 284 bytes, then the float32 data; .mgz is the same gzipped."""
    header = np.array([1, len(values), 1, 1, 1, 3, 0], ">i4").tobytes() + np.array([0], ">i2").tobytes()
    raw = header.ljust(284, b"\0") + np.asarray(values, ">f4").tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".mgz" else raw)


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    """A forged NSD folder (design: 10,000 conditions x 3 trials over 40 sessions for subject 1; ncsnr surfaces) and
    a challenge folder whose subj01 training images are exactly the conditions of its 37 training sessions."""
    root = tmp_path_factory.mktemp("nsd")
    rng = np.random.default_rng(0)
    subjectim = np.stack([rng.permutation(73000)[:10000] for _ in range(8)]) + 1  # 1-based, as in the .mat
    masterordering = rng.permutation(np.repeat(np.arange(10000), 3))[None] + 1
    design = root / "nsd" / "nsddata/experiments/nsd"
    design.mkdir(parents=True)
    savemat(design / "nsd_expdesign.mat", {"masterordering": masterordering, "subjectim": subjectim})
    trials = (subjectim[0] - 1)[masterordering[0] - 1][:37 * 750]
    train_ids = np.unique(trials)
    challenge = root / "challenge"
    zeros = {h: np.zeros((len(train_ids), n), np.float32) for h, n in VERTICES.items()}
    folder = synthetic_subjects.write_subject(challenge, SUBJECT, None, zeros)
    images = folder / "training_split" / "training_images"
    images.mkdir(parents=True)
    for i, nsd_id in enumerate(train_ids):  # names only: the noise ceiling never opens an image
        (images / f"train-{i + 1:04d}_nsd-{nsd_id:05d}.png").touch()
    surfaces = root / "nsd" / f"nsddata_betas/ppdata/{SUBJECT}/fsaverage/betas_fithrf_GLMdenoise_RR"
    surfaces.mkdir(parents=True)
    ncsnr = {h: rng.uniform(0, 2, data.FSAVERAGE_VERTICES) for h in VERTICES}
    for h, values in ncsnr.items():
        write_mgh(surfaces / f"{h}.ncsnr.mgh", values)
    return {"nsd": root / "nsd", "challenge": challenge, "trials": trials, "train_ids": train_ids, "ncsnr": ncsnr}


def test_mgh_and_mgz_are_read_and_bad_ones_refused(tmp_path):
    values = np.linspace(0, 3, 11)
    for name in ("a.mgh", "a.mgz"):
        write_mgh(tmp_path / name, values)
        np.testing.assert_allclose(noise_ceiling.read_mgh(tmp_path / name), values.astype(np.float32))
    (tmp_path / "short.mgh").write_bytes((tmp_path / "a.mgh").read_bytes()[:300])
    with pytest.raises(errors.AlgonautsDataError, match="truncated"):
        noise_ceiling.read_mgh(tmp_path / "short.mgh")
    (tmp_path / "junk.mgh").write_bytes(b"x" * 400)
    with pytest.raises(errors.AlgonautsDataError, match="not an MGH volume"):
        noise_ceiling.read_mgh(tmp_path / "junk.mgh")


@pytest.mark.slow
def test_written_inputs_give_the_organisers_ceiling(nsd):
    """Repetition counts per training image and, for the dev kit's held-out images, the organisers' rep_1/rep_2/rep_3
    loop and ceiling formula over the same NSD files."""
    subject = data.load_subject(SUBJECT, nsd["challenge"])
    summary = noise_ceiling.write(subject, nsd["nsd"])
    subject = data.load_subject(SUBJECT, nsd["challenge"])
    counts = subject.repetitions()
    np.testing.assert_array_equal(counts, [np.sum(nsd["trials"] == i) for i in nsd["train_ids"]])
    heldout = splits.devkit(len(counts))[1]
    rep_1 = rep_2 = rep_3 = 0
    for i in nsd["train_ids"][heldout]:
        if len(np.where(nsd["trials"] == i)[0]) == 1:
            rep_1 += 1
        elif len(np.where(nsd["trials"] == i)[0]) == 2:
            rep_2 += 1
        elif len(np.where(nsd["trials"] == i)[0]) == 3:
            rep_3 += 1
    norm_term = (rep_3 / 3 + rep_2 / 2 + rep_1 / 1) / (rep_3 + rep_2 + rep_1)
    assert summary["heldout_norm_term"] == pytest.approx(norm_term) and rep_1 and rep_2 and rep_3
    for h in VERTICES:
        lh_ncsnr = nsd["ncsnr"][h].astype(np.float32)[np.where(subject.fsaverage_mask(h))[0]]
        expected = (lh_ncsnr ** 2) / ((lh_ncsnr ** 2) + norm_term)
        np.testing.assert_allclose(noise_ceiling.ceiling(subject.ncsnr(h), counts[heldout]), expected, rtol=1e-6)
    assert json.loads((subject.directory / "training_split/noise_ceiling/noise_ceiling.json").read_text()) == summary


@pytest.mark.slow
def test_another_subjects_design_is_refused(nsd, tmp_path):
    masterordering, subjectim = noise_ceiling.read_expdesign(nsd["nsd"] / "nsddata/experiments/nsd/nsd_expdesign.mat")
    subject = data.load_subject(SUBJECT, nsd["challenge"])
    with pytest.raises(errors.AlgonautsDataError, match="nsd_expdesign.mat of the NSD release"):
        noise_ceiling.repetitions(subject, masterordering, subjectim[::-1])


@pytest.mark.slow
def test_command_line(nsd, tmp_path):
    """`noise-ceiling` prints the summaries as JSON; a folder that is not NSD's: exit 2, one line, nothing written."""
    env = {**os.environ, settings.CACHE: str(tmp_path / "cache")}
    command = [sys.executable, "-m", "brainscore_plugins", "noise-ceiling", "--data-dir", str(nsd["challenge"]),
               "--subject", SUBJECT]
    done = subprocess.run(command + ["--nsd", str(nsd["nsd"])], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["subject"] == SUBJECT
    bad = subprocess.run(command + ["--nsd", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    errors_ = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode == 2 and len(errors_) == 1 and "nsd_expdesign.mat is missing" in errors_[0]
    assert "Traceback" not in bad.stderr
