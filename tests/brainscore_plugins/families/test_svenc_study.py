"""The svenc family against the ScalingVisionEncoder study's own code (github.com/suyamat/ScalingVisionEncoder),
re-implemented here step by step: its pixels (``extracting.py``'s ``ToTensor()``), its extracted layers
(``model_layer`` with the vendored ``extracting_depth`` / ``EXTRACT_LAYER`` loops), and its encoding pipeline
(pre-pool, ``hparams_searching.py``'s kernel grid, ``encoding.py``'s ridge, ``predicting.py``'s per-vertex choice)
against our :func:`encoding.search` on the same synthetic features; other families' search is unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from brainscore_plugins import architectures, candidates, catalog, factory, families
from brainscore_plugins.algonauts import benchmark, encoding
from brainscore_plugins.architectures import internimage
from brainscore_plugins.families import FeatureMap
from brainscore_plugins.preprocessing import TRAINING_CONFIG, preprocessing_for
from region_commitment import brainscore_internals

pytestmark = pytest.mark.usefixtures("one_thread")  # one torch and BLAS thread

# extracting.py
MODEL_LAYER = {"eva02-clip-enormous": 64, "eva02-clip-large": 24, "eva02-clip-base": 12, "eva-clip-giant": 40,
               "clip-convnext": 40, "one-peace": 40, "internimage": 52}
MODEL_IMG_SIZE = {"eva02-clip-enormous": 224, "eva02-clip-large": 224, "eva02-clip-base": 224, "eva-clip-giant": 224,
                  "clip-convnext": 256, "one-peace": 256, "internimage": 512}
LEVEL2_POST_NORM_BLOCK_IDS = [5, 11, 17, 23, 29, 35, 41, 47]  # internimage_g_22kto1k_512.yaml
ALPHAS, NCV = np.logspace(0, 15, 30), 8  # encoding.py


def study_layer(model_id: str, depth: int) -> str:
    """Our module for ``define_model(model_id, depth)``'s output, read off the vendored forward passes."""
    if model_id.startswith("eva"):  # eva.py: break after block `depth`, no final norm
        return f"blocks.{depth}"
    if model_id == "one-peace":  # image_encoder_states[depth]: layer `depth`'s output
        return f"fusion_model.layers.{depth}"
    if model_id == "clip-convnext":  # convnext.py forward_features: 0 stem, i+1, i+4, i+8, i+38
        if depth == 0:
            return "stem"
        stage = max(s for s, first in enumerate((1, 4, 8, 38)) if depth >= first)
        return f"stages.{stage}.blocks.{depth - (1, 4, 8, 38)[stage]}"
    # intern_image.py forward_features_seq_out: levels from 0, 2, 4, 52; a post norm applies before the return
    level = max(i for i, first in enumerate((0, 2, 4, 52)) if depth >= first)
    block = depth - (0, 2, 4, 52)[level]
    if level == 2 and block in LEVEL2_POST_NORM_BLOCK_IDS:
        return f"levels.2.post_norms.{LEVEL2_POST_NORM_BLOCK_IDS.index(block)}"
    return f"levels.{level}.blocks.{block}"


# ---------------------------------------------------------------- layers and pixels

@pytest.mark.parametrize("model_id", MODEL_LAYER)
def test_candidate_layers_are_the_studys_extracted_layers(model_id):
    entry = catalog.resolve(model_id)
    with torch.device("meta"):
        model = architectures.build(entry.arch, entry.num_classes, entry.training_method)
    expected = [study_layer(model_id, depth) for depth in range(MODEL_LAYER[model_id])]
    names = candidates.for_entry(entry, model)
    assert names == expected and set(names) <= set(dict(model.named_modules()))
    assert entry.resize == entry.crop == MODEL_IMG_SIZE[model_id]
    pre_pool = {"clip-convnext": FeatureMap(21), "internimage": FeatureMap(14, channels_last=True)}.get(model_id)
    assert families.get("svenc").feature_maps(model) == ({} if pre_pool is None else dict.fromkeys(names, pre_pool))


@pytest.mark.slow
def test_default_pixels_are_the_studys_to_tensor_and_the_option_is_named(tmp_path):
    """The study fed ``model_img_size`` px images through ``ToTensor()`` only; CLIP-normalised pixels are the option
    ``training-config``, under their own activations identifier."""
    rng = np.random.default_rng(0)
    at_size, larger = tmp_path / "at_size.png", tmp_path / "larger.png"
    Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(at_size)
    Image.fromarray(rng.integers(0, 256, (425, 425, 3), dtype=np.uint8)).save(larger)  # NSD's size
    study = transforms.ToTensor()
    resized = transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC)
    default = factory.activations_model("svenc_eva02-clip-base", pretrained=False)
    option = factory.activations_model("svenc_eva02-clip-base", pretrained=False, preprocessing=TRAINING_CONFIG)
    assert default.identifier == "svenc_eva02-clip-base-untrained"  # no weights: nothing to name
    assert option.identifier == "svenc_eva02-clip-base-untrained-training-config-preprocessing"
    pixels = brainscore_internals.preprocess(default)([str(at_size), str(larger)])
    with Image.open(at_size) as image:
        np.testing.assert_array_equal(pixels[0], study(image.convert("RGB")).numpy())
    with Image.open(larger) as image:
        np.testing.assert_allclose(pixels[1], study(resized(image.convert("RGB"))).numpy(), atol=1e-6)
    normalized = brainscore_internals.preprocess(option)([str(at_size)])[0]
    mean, std = families.get("svenc").normalization("eva02_base_patch16_clip_224")
    np.testing.assert_allclose(normalized * np.array(std)[:, None, None] + np.array(mean)[:, None, None], pixels[0],
                               atol=1e-5)


# ---------------------------------------------------------------- the search against the study's pipeline

def study_stored(kind: str, output: torch.Tensor) -> torch.Tensor:
    """extracting.py's stored features of one layer's output (the branch its numbers came from, see svenc.py)."""
    if kind == "convnext":
        return nn.AdaptiveMaxPool2d((21, 21))(output)
    if kind == "internimage":
        return nn.AdaptiveMaxPool2d((14, 14))(output.permute(0, 3, 1, 2))
    tokens = output[:, 1:, :]  # eva: class token dropped
    side = int(np.sqrt(tokens.shape[1]))
    return tokens.reshape(tokens.shape[0], side, side, -1).permute(0, 3, 1, 2)


def study_cv_scores(stim: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """encoding.py's ``encoder``: centring, then RidgeCV if n_samples >= n_features else KernelRidgeCV."""
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    n_samples, n_features = stim.shape
    solver = RidgeCV if n_samples >= n_features else KernelRidgeCV
    ridge = solver(alphas=ALPHAS, cv=NCV, solver_params={"score_func": correlation_score})
    with encoding.fit_backend() as backend:
        make_pipeline(StandardScaler(with_mean=True, with_std=False), ridge).fit(stim, resp)
        return backend.to_numpy(ridge.cv_scores_)


def study_choice(scores: dict, n_vertices: int) -> np.ndarray:
    """predicting.py: score 0 and (layer 4, kernel 1) to start, strictly greater scores win, layers then kernels."""
    score = np.zeros(n_vertices)
    best_params = np.ones((n_vertices, 2))
    best_params[:, 0] = best_params[:, 0] * 4
    for (layer, kernel), temp_score in scores.items():
        best_params[temp_score > score, :] = layer, kernel
        score[temp_score > score] = temp_score[temp_score > score]
    return best_params.astype(int)


def test_search_equals_the_studys_pipeline(tmp_path, make_store):
    """Three layers as the study stored them (a ConvNeXt map pre-pooled 32 -> 21, an InternImage channels-last map
    20 -> 14, an EVA token grid with its class token), responses planted in three (layer, kernel) cells and noise:
    our search on the raw outputs gives the study's CV score in every cell and its choice for every vertex with a
    positive CV score. A vertex without one is left by the study at its initial (layer 4, kernel 1), an artefact;
    ours keeps its best cell."""
    rng = np.random.default_rng(1)
    n, n_train, kernels = 240, 200, (1, 2, 5, 16)  # kernel 16 has more features than images: kernel ridge
    outputs = {"convnext": torch.from_numpy(rng.normal(size=(n, 3, 32, 32)).astype(np.float32)),
               "internimage": torch.from_numpy(rng.normal(size=(n, 20, 20, 3)).astype(np.float32)),
               "eva": torch.from_numpy(rng.normal(size=(n, 1 + 16, 3)).astype(np.float32))}
    grids = {"convnext": encoding.LayerGrid("channels", 3, 32, 32, pre_pool=21),  # as layer_grids reads them
             "internimage": encoding.LayerGrid("tokens", 3, 20, 20, pre_pool=14),
             "eva": encoding.LayerGrid("tokens", 3, 4, 4, prefix=1)}
    stored = {kind: study_stored(kind, output) for kind, output in outputs.items()}
    pooled = {(kind, k): nn.AdaptiveMaxPool2d((k, k))(stored[kind]).reshape(n, -1).numpy()
              for kind in outputs for k in kernels}
    planted = [("convnext", 5), ("internimage", 2), ("eva", 1)]
    signal = [pooled[cell] @ rng.normal(size=(pooled[cell].shape[1], 10)) for cell in planted]
    responses = np.concatenate([s / s.std(0) + 0.5 * rng.normal(size=s.shape) for s in signal]
                               + [rng.normal(size=(n, 10))], 1).astype(np.float32)
    unprepooled = nn.AdaptiveMaxPool2d((5, 5))(outputs["convnext"]).reshape(n, -1).numpy()
    assert not np.allclose(pooled["convnext", 5], unprepooled)  # pre-pooling changes the features

    train, test = np.arange(n_train), np.arange(n_train, n)
    study_scores = {(layer, k): study_cv_scores(pooled[kind, k][train], responses[train])
                    for layer, kind in enumerate(outputs, 1) for k in kernels}
    store = make_store(tmp_path / "store", {kind: output.reshape(n, -1).numpy() for kind, output in outputs.items()},
                       block_columns=500)
    ours = encoding.search(store, grids, responses, train, test, kernels=kernels, progress=False)

    cells = ours.cells.set_index(["layer", "kernel"])
    for (layer, k), scores in study_scores.items():
        kind = list(outputs)[layer - 1]
        assert cells.loc[(kind, k), "n_features"] == pooled[kind, k].shape[1]
        assert cells.loc[(kind, k), "cv_score"] == pytest.approx(scores.mean(), abs=1e-5)
    best = np.max(np.stack(list(study_scores.values())), 0)
    np.testing.assert_allclose(ours.cv_scores, best, rtol=1e-4, atol=1e-5)
    choice = study_choice(study_scores, responses.shape[1])
    positive = best > 0
    layer_number = {kind: i for i, kind in enumerate(outputs, 1)}
    ours_choice = np.stack([[layer_number[layer] for layer in ours.layers], ours.kernels], 1)
    np.testing.assert_array_equal(ours_choice[positive], choice[positive])
    assert positive[:30].all()
    for i, cell in enumerate(planted):  # the planted cells are found
        assert (choice[10 * i:10 * (i + 1)] == [layer_number[cell[0]], cell[1]]).all()
    # stored pre-pooled at extraction (what the benchmark does, as the study stored them): the same search
    small = {kind: grid.stored() for kind, grid in grids.items()}
    reduced = make_store(tmp_path / "reduced", {kind: grids[kind].pre_pooled(output.reshape(n, -1).numpy())
                                                for kind, output in outputs.items()}, block_columns=500)
    assert small["convnext"].row_width == 3 * 21 * 21 < grids["convnext"].row_width
    again = encoding.search(reduced, small, responses, train, test, kernels=kernels, progress=False)
    np.testing.assert_array_equal(again.cv_scores, ours.cv_scores)
    np.testing.assert_array_equal(again.predictions, ours.predictions)

    # a vertex whose sign flips between the first and last four folds: every fold's fit predicts the opposite sign
    flipped = pooled["eva", 1] @ rng.normal(size=3) * np.where(np.arange(n) < n_train // 2, 1, -1)
    flipped = np.stack([flipped, rng.normal(size=n)], 1).astype(np.float32)
    negative = encoding.search(store, {"eva": grids["eva"]}, flipped, train, test, kernels=(1,), progress=False)
    study = study_cv_scores(pooled["eva", 1][train], flipped[train])
    np.testing.assert_allclose(negative.cv_scores, study, rtol=1e-4, atol=1e-5)
    assert study[0] < 0 and list(study_choice({(3, 1): study}, 2)[0]) == [4, 1]  # the study: its initial cell
    assert (negative.layers[0], negative.kernels[0]) == ("eva", 1)  # ours: the best cell


# ---------------------------------------------------------------- layer grids from the family's declarations

def _wrapper(identifier: str, model: nn.Module, size: int, entry=None):
    """A PytorchWrapper; for a catalog ``entry``, carrying its family's feature maps as the factory's do."""
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    wrapper = PytorchWrapper(identifier=identifier, model=model.eval(),
                             preprocessing=preprocessing_for(size, size, "bicubic", "unnormalized"))
    if entry is not None:
        wrapper.feature_maps = candidates.feature_maps(entry, model)
    return wrapper


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "image.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_layer_grids_pre_pool_the_study_maps(image):
    """Scaled-down networks built as svenc entries: ConvNeXt maps pre-pooled to 21, the channels-last InternImage
    maps read as (H, W, C) and pre-pooled to 14, EVA token grids as they are; the same ConvNeXt in a wrapper that
    declares no feature maps (any other Brain-Score model) is read as its shape says."""
    svenc = families.get("svenc")
    torch.manual_seed(0)
    convnext, intern, eva = (timm.create_model("convnext_atto"), internimage.build("tiny-test"),
                             timm.create_model("eva02_tiny_patch14_224"))
    wrapper = _wrapper("svenc_clip-convnext", convnext, 128, catalog.resolve("svenc_clip-convnext"))
    grids = benchmark.layer_grids(wrapper, svenc.candidate_layers(convnext), image)
    assert grids["stem"] == encoding.LayerGrid("channels", 40, 32, 32, pre_pool=21)
    assert all(grid.layout == "channels" and grid.pre_pool == 21 for grid in grids.values())
    grids = benchmark.layer_grids(_wrapper("svenc_internimage-training-config-preprocessing", intern, 64,
                                           catalog.resolve("svenc_internimage")),
                                  svenc.candidate_layers(intern), image)
    assert grids["levels.0.blocks.0"] == encoding.LayerGrid("tokens", 8, 16, 16, pre_pool=14)  # (N, 16, 16, 8) maps
    assert grids["levels.0.blocks.0"].n_features(None) == 8 * 14 * 14
    assert all(grid.layout == "tokens" and grid.pre_pool == 14 for grid in grids.values())
    grids = benchmark.layer_grids(_wrapper("svenc_eva02-clip-base", eva, 224, catalog.resolve("svenc_eva02-clip-base")),
                                  svenc.candidate_layers(eva), image)
    assert set(grids.values()) == {encoding.LayerGrid("tokens", 192, 16, 16, prefix=1)}
    plain = benchmark.layer_grids(_wrapper("my-convnext", convnext, 128), ["stem"], image)
    assert plain["stem"] == encoding.LayerGrid("channels", 40, 32, 32)


def test_other_families_search_is_unchanged(image, monkeypatch):
    """A catalogued model of another family, built with another preprocessing (a suffixed activations identifier):
    the search layers are its candidates, the grids what their shapes say (no pre-pool), its family declares
    nothing."""
    from brainscore_plugins import settings
    name = "spvvs_resnet18_imagenet_full"
    monkeypatch.setenv(settings.PREPROCESSING, TRAINING_CONFIG)
    committed = factory.brain_model(name, pretrained=False)
    wrapper = committed.activations_model
    assert wrapper.identifier != name
    model = brainscore_internals.torch_module(wrapper)
    layers = benchmark.search_layers(committed)
    assert layers == candidates.for_entry(catalog.resolve(name), model) and len(layers) > 2
    assert layers != committed.layers and wrapper.feature_maps == {}
    shapes = {}
    for layer in layers:
        model.get_submodule(layer).register_forward_hook(
            lambda module, inputs, output, layer=layer: shapes.__setitem__(layer, tuple(output.shape[1:])))
    grids = benchmark.layer_grids(wrapper, layers, image)
    expected = {layer: encoding.LayerGrid("channels", *shape) if len(shape) == 3 else
                encoding.LayerGrid("flat", int(np.prod(shape)), 1, 1) for layer, shape in shapes.items()}
    assert grids == expected and all(grid.pre_pool is None for grid in grids.values())
