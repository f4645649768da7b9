"""GroupLin (algonauts23): forged checkpoints of the published layout load strictly through the safe loader, and
the network equals a direct implementation of the authors' head; the fMRI predictor and the bad-file errors."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from brainscore_plugins import architectures, catalog, errors, factory, forge, plugin_sources, settings
from brainscore_plugins.weights import formats, unpickle
from brainscore_plugins.architectures import grouplin
from brainscore_plugins.families.grouplin import TRUNK_MIRROR_PATH

PHASES = ("grouplin_phase1", "grouplin_phase2")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grouplin-mirror")
    for seed, identifier in enumerate(PHASES):
        forge.forge_into_mirror(identifier, folder, seed=seed)
    return folder


@pytest.fixture
def offline(mirror, tmp_path, monkeypatch, use_mirror):
    return use_mirror(mirror, tmp_path / "cache")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.standard_normal((2, 3, 224, 224)).astype(np.float32))


def test_parameter_counts():
    """Trunk as timm counts it; the head from the authors' shapes; the catalog's n_params is the sum."""
    with torch.device("meta"):
        model = architectures.build("grouplin_eva02_base", 0, "grouplin-head")
    trunk = sum(p.numel() for p in model.trunk.parameters())
    assert trunk == sum(p.numel() for p in timm.create_model(grouplin.TRUNK, pretrained=False).parameters())
    layer = 1024 * 257 + 1024 * 768 + 2 * 1024  # factorised projection + batch norm
    head = 6 * layer + 1024 * 2048 + (1024 * 8 * 2048 + 8 * 2048) + (2048 * 39548 + 39548)
    assert sum(p.numel() for p in model.encoder.parameters()) == head
    for identifier in PHASES:
        assert catalog.resolve(identifier).n_params == trunk + head == 191_993_212


def _direct(encoder: dict, trunk: torch.nn.Module, images: torch.Tensor, subject: int | None) -> torch.Tensor:
    """The authors' GroupLinearEncoder.predict written out from the state dict."""
    captured = {}
    for i in (0, 2, 4, 6, 8, 10):
        trunk.blocks[i].register_forward_hook(lambda m, inp, out, i=i: captured.__setitem__(i, out))
    with torch.no_grad():
        trunk(images)
        hidden = []
        for j, i in enumerate((0, 2, 4, 6, 8, 10)):
            p = f"feat_projs.{j}."
            h = torch.einsum("nlc,kc,kl->nk", captured[i], encoder[p + "proj.weight2"], encoder[p + "proj.weight1"])
            h = (h - encoder[p + "norm.running_mean"]) / torch.sqrt(encoder[p + "norm.running_var"] + 1e-5)
            hidden.append(h * encoder[p + "norm.weight"] + encoder[p + "norm.bias"])
        latent = torch.stack(hidden).mean(0)
        embed = lambda z: z @ encoder["embed.weight"].T + encoder["embed.bias"]  # noqa: E731
        prediction = embed(latent @ encoder["shared_proj.weight"].T)
        if subject is not None:
            residual = latent @ encoder["subj_proj.fc.weight"].T + encoder["subj_proj.fc.bias"]
            residual = residual.view(len(latent), 8, -1)
            prediction = prediction + embed(residual[:, subject])
    return prediction


@pytest.mark.slow
@pytest.mark.parametrize("identifier", PHASES)
def test_forged_checkpoint_equals_direct_implementation(identifier, offline, images):
    entry = catalog.resolve(identifier)
    saved = unpickle.safe_load(offline / entry.weights_file)
    assert set(saved) == {"epoch", "metric", "trunk", "encoder"}
    assert (saved["trunk"] is None) == (identifier == "grouplin_phase1")
    trunk = timm.create_model(grouplin.TRUNK, pretrained=False).eval()
    trunk.load_state_dict(saved["trunk"] if saved["trunk"] is not None
                          else formats.load_safetensors(offline / TRUNK_MIRROR_PATH))
    model = factory.create_model(identifier)
    with torch.no_grad():
        ours = model(images, torch.tensor([3, 3]))
        group = model(images)
    torch.testing.assert_close(ours, _direct(saved["encoder"], trunk, images, 3), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(group, _direct(saved["encoder"], trunk, images, None), rtol=1e-4, atol=1e-4)
    assert ours.shape == (2, grouplin.GROUP_VERTICES)


@pytest.mark.slow
def test_phase_mixup_is_refused(offline, tmp_path, monkeypatch):
    """A phase-1 file (no trunk) where phase 2 is expected, and the reverse: a clear error naming the phases."""
    swapped = tmp_path / "swapped"
    (swapped / "algonauts23").mkdir(parents=True)
    phase1 = (offline / "algonauts23/grouplin_phase1.pt").read_bytes()
    (swapped / "algonauts23" / "grouplin_phase2.pt").write_bytes(phase1)
    monkeypatch.setenv(settings.MIRROR, str(swapped))
    with pytest.raises(errors.CheckpointInvalidError, match="phase-1 GroupLin checkpoint, not phase 2"):
        factory.create_model("grouplin_phase2")


@pytest.mark.slow
def test_wrong_keys_and_truncated_trunk(offline, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    saved = unpickle.safe_load(offline / "algonauts23/grouplin_phase1.pt")
    del saved["encoder"]["embed.bias"]
    formats.save_atomically(saved, bad / "algonauts23/grouplin_phase1.pt")
    trunk = (offline / TRUNK_MIRROR_PATH).read_bytes()
    (bad / TRUNK_MIRROR_PATH).parent.mkdir(parents=True)
    (bad / TRUNK_MIRROR_PATH).write_bytes(trunk)
    monkeypatch.setenv(settings.MIRROR, str(bad))
    with pytest.raises(errors.CheckpointInvalidError, match="embed.bias"):
        factory.create_model("grouplin_phase1")
    formats.save_atomically(unpickle.safe_load(offline / "algonauts23/grouplin_phase1.pt"),
                          bad / "algonauts23/grouplin_phase1.pt")
    (bad / TRUNK_MIRROR_PATH).write_bytes(trunk[:len(trunk) // 2])
    with pytest.raises(errors.CheckpointInvalidError, match="safetensors"):
        factory.create_model("grouplin_phase1")


@pytest.mark.slow
def test_fmri_predictor(offline, tmp_path):
    """``<identifier>-fmri`` is registered, loads without a region commitment and predicts each subject's fMRI."""
    assert plugin_sources.registered_identifiers("grouplin") == [*PHASES, *(p + "-fmri" for p in PHASES)]
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"train-{i + 1:04d}_nsd-{i:05d}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(paths[-1])
    predictor = factory.brain_model("grouplin_phase1-fmri")
    assert predictor.identifier == "grouplin_phase1-fmri"
    predicted = predictor.predict_fmri([str(p) for p in paths], "subj02", progress=False)
    network = factory.create_model("grouplin_phase1")
    batch = torch.from_numpy(predictor.preprocessing([str(p) for p in paths]))
    with torch.no_grad():
        expected = network(batch, torch.tensor([1, 1, 1])).numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(NotImplementedError, match="grouplin_phase1 for Brain-Score"):
        predictor.look_at(paths)
    with pytest.raises(errors.ModelNotFoundError, match="predict no fMRI"):
        factory.brain_model("spvvs_resnet18_imagenet_full-fmri")
