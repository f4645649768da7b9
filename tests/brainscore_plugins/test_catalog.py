"""The catalog as data: completeness against the published tables, the identifier scheme, resolution."""
import csv
import re
import subprocess
import sys
from collections import Counter

import pytest

from brainscore_plugins import catalog, errors, families


@pytest.fixture(scope="module")
def published_checkpoints(reference_dir):
    with open(reference_dir / "model_checkpoints.csv") as f:
        return list(csv.DictReader(f))


def test_every_published_checkpoint_is_catalogued_once(published_checkpoints):
    rows = catalog.entries("spvvs")
    assert len(rows) == len(published_checkpoints) == 10751
    assert {(r.model_id, r.epoch, r.url) for r in rows} == {
        (r["model_id"], int(r["epoch"]), r["checkpoint_url"]) for r in published_checkpoints}
    assert len({r.model_id for r in rows}) == 811


def test_one_latest_checkpoint_per_model_and_it_is_the_highest_epoch():
    by_model = {}
    for entry in catalog.entries("spvvs"):
        by_model.setdefault(entry.model_id, []).append(entry)
    for model_id, rows in by_model.items():
        latest = [r for r in rows if r.latest]
        assert len(latest) == 1 and latest[0].epoch == max(r.epoch for r in rows), model_id


def _expected_identifiers(family: families.Family) -> int:
    """One per checkpoint, plus a bare (latest) identifier per model where checkpoints are per epoch."""
    per_epoch = any(entry.epoch is not None for entry in catalog.entries(family.prefix))
    return family.published_counts["checkpoints"] + (family.published_counts["models"] if per_epoch else 0)


@pytest.mark.parametrize("prefix", sorted(families.all_families()))
def test_each_family_catalogues_what_it_published(prefix):
    family = families.get(prefix)
    entries = catalog.entries(prefix)
    assert len(entries) == family.published_counts["checkpoints"]
    models = family.published_counts["models"]
    assert len({entry.model_id for entry in entries}) == len(catalog.identifiers(prefix)) == models
    identifiers = catalog.identifiers(prefix, checkpoints=True)
    assert len(identifiers) == len(set(identifiers)) == _expected_identifiers(family)
    assert all(identifier.startswith(prefix + "_") for identifier in identifiers)
    assert {entry.checkpoint_format for entry in entries} <= set(family.formats)
    assert all(bool(entry.url) != bool(entry.hf_repo) and entry.weights_file for entry in entries)


@pytest.mark.slow
@pytest.mark.parametrize("prefix", sorted(families.all_families()))
def test_each_catalog_is_what_its_generator_script_writes(prefix, reference_dir, tmp_path, repo):
    family = families.get(prefix)
    out = tmp_path / family.catalog
    process = subprocess.run([sys.executable, str(repo / family.generator), "--output", str(out)],
                             capture_output=True, text=True, timeout=600, cwd=repo)
    assert process.returncode == 0, process.stderr[-2000:]
    assert out.read_bytes() == family.catalog_path.read_bytes(), f"run `python {family.generator}`"


def test_identifier_scheme_is_unique_and_reversible():
    everything = catalog.identifiers(checkpoints=True)  # all families
    assert len(everything) == len(set(everything)) == sum(map(_expected_identifiers,
                                                              families.all_families().values()))
    for entry in catalog.entries("spvvs"):
        assert "." not in entry.model_id and "'" not in entry.model_id and '"' not in entry.model_id
        assert entry.identifier == f"spvvs_{entry.model_id}.ep{entry.epoch}"
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", entry.identifier)


def test_no_identifier_collides_with_brainscore_plugins():
    """Brain-Score's scanner refuses an identifier registered twice; its site refuses existing ones."""
    from brainscore_plugins.bridge import brainscore_dir
    theirs = set()
    for init in (brainscore_dir() / "models").glob("*/__init__.py"):
        if init.resolve().parent.parent != (brainscore_dir() / "models").resolve():
            continue  # our own linked plugin
        theirs |= set(re.findall(r"model_registry\[['\"]([^'\"]+)['\"]\]", init.read_text(errors="ignore")))
    assert "resnet18_imagenet_full" in theirs  # Brain-Score registers study ids verbatim...
    assert not theirs & set(catalog.identifiers(checkpoints=True))  # ...ours are prefixed


def test_resolve_accepts_identifiers_and_study_aliases():
    latest = catalog.resolve("spvvs_resnet18_imagenet_full")
    assert latest.latest and latest.model_id == "resnet18_imagenet_full"
    assert catalog.resolve("resnet18_imagenet_full") == latest
    assert catalog.resolve("resnet18_imagenet_full.ep10").epoch == 10
    assert catalog.resolve("spvvs_resnet18_imagenet_full.ep10").identifier == "spvvs_resnet18_imagenet_full.ep10"


def test_unknown_identifier_suggests_close_matches():
    with pytest.raises(errors.ModelNotFoundError) as error:
        catalog.resolve("spvvs_resnet18_imagenet_ful")
    assert "spvvs_resnet18_imagenet_full" in str(error.value) and "Did you mean" in str(error.value)
    with pytest.raises(errors.ModelNotFoundError, match="Unknown model family"):
        catalog.entries("nope")


def test_preprocessing_follows_training_configs():
    assert catalog.resolve("convnext_tiny_imagenet_full_seed-0").interpolation == "bicubic"
    assert catalog.resolve("deit_small_imagenet_full_seed-0").interpolation == "bicubic"
    assert catalog.resolve("resnet50_imagenet_full").interpolation == "bilinear"
    b1, b2 = catalog.resolve("efficientnet_b1_imagenet_full"), catalog.resolve("efficientnet_b2_imagenet_full")
    assert (b1.resize, b1.crop, b1.interpolation) == (255, 240, "bicubic")
    assert (b2.resize, b2.crop) == (288, 288)
    assert catalog.resolve("simclr_resnet18_imagenet_full_seed-0").interpolation == "bicubic"


def test_weights_choice_and_classes():
    assert catalog.resolve("convnext_tiny_imagenet_full_seed-0").weights_key == "model_ema_state_dict"
    assert catalog.resolve("deitflex-l-0_imagenet_full_seed-0").weights_key == "model_ema_state_dict"
    assert catalog.resolve("efficientnet_b0_imagenet_full").weights_key == "model"
    assert catalog.resolve("resnet18_ecoset_full").num_classes == 565
    assert catalog.resolve("resnet18_places365_full_seed-0").num_classes == 365
    counts = Counter(e.num_classes for e in catalog.entries("spvvs") if e.latest)
    assert set(counts) <= {10, 365, 565, 1000, 4186, 5000, 10000, 10450}


@pytest.mark.slow
def test_every_committed_layer_exists_in_the_built_model():
    """The region maps and readout layers of all 11,562 identifiers name modules of the model we build."""
    import torch
    from brainscore_plugins import architectures
    needed = {}
    for entry in catalog.entries("spvvs"):
        assert entry.region_layer_map.keys() == {"V1", "V2", "V4", "IT"} and entry.readout, entry.identifier
        needed.setdefault((entry.arch, entry.training_method), set()).update(entry.layers)
    missing = {}
    for (arch, method), layers in needed.items():
        with torch.device("meta"):
            names = dict(architectures.build(arch, 1000, method).named_modules())
        if layers - set(names):
            missing[(arch, method)] = sorted(layers - set(names))
    assert not missing


def test_list_models_is_timm_like():
    from brainscore_plugins import list_models
    assert len(list_models()) == 976 and len(list_models(checkpoints=True)) == 976 + 10751
    assert list_models("resnet18_imagenet_full*") == [  # a study-id glob matches too
        "spvvs_resnet18_imagenet_full", "spvvs_resnet18_imagenet_full_seed-1", "spvvs_resnet18_imagenet_full_seed-2"]
    assert list_models("resnet18_imagenet_full*", family="spvvs") == list_models("spvvs_resnet18_imagenet_full*")
    assert list_models("*vits14_1.0_1*", family="hlvit") == ["hlvit_vits14_1.0_1", "hlvit_vits14_1.0_1-finetuned"]
    assert list_models("*vits14_1.0_1*", exclude="*-finetuned") == ["hlvit_vits14_1.0_1"]
    epochs = list_models("spvvs_resnet18_imagenet_full.ep1*", checkpoints=True)
    assert epochs[:3] == ["spvvs_resnet18_imagenet_full.ep1", "spvvs_resnet18_imagenet_full.ep10",
                          "spvvs_resnet18_imagenet_full.ep15"]
    assert list_models(["alexnet_imagenet_full_seed-0", "spvvs_resnet18_imagenet_full.ep3"]) == [
        "spvvs_alexnet_imagenet_full_seed-0", "spvvs_resnet18_imagenet_full.ep3"]  # names: ours, one spelling
    assert list_models("nothing*") == list_models("spvvs_nothing") == []  # as timm: an empty list, no error
    assert list_models("*resnet18*", arch="resnet18", dataset="ecoset") == [
        i for i in list_models("*resnet18*") if catalog.resolve(i).arch == "resnet18"
        and catalog.resolve(i).dataset == "ecoset"] != []


@pytest.mark.parametrize("pattern, checkpoints, message", [
    ("resnt18_imagenet_full*", False, "No identifier matches 'resnt18_imagenet_full*'. Did you mean "
                                      "'resnet18_imagenet_full*'?"),
    ("*vitz14*", False, "Did you mean '*vits14*'?"),
    ("zzzz*", False, "No identifier matches 'zzzz*'. Globs match"),
    ("spvvs_resnet18_imagenet_full.ep*", False, "matches only epoch checkpoints; add --checkpoints"),
])
def test_a_selection_glob_matching_nothing_says_what_would(pattern, checkpoints, message):
    with pytest.raises(errors.ModelNotFoundError) as raised:
        catalog.select([pattern], checkpoints=checkpoints)
    assert message in str(raised.value)
    assert len(catalog.select(["spvvs_resnet18_imagenet_full.ep*"], checkpoints=True)) == 28


def test_lookup_is_resolve_without_suggestions():
    assert catalog.lookup("resnet18_imagenet_full") is catalog.resolve("spvvs_resnet18_imagenet_full")
    assert catalog.lookup("spvvs_resnet18_imagenet_full.ep3").epoch == 3
    assert catalog.lookup("spvvs_nope") is None


def test_catalogs_are_read_without_importing_family_modules(run_python):
    process = run_python("import sys\nfrom brainscore_plugins import catalog, list_models\n"
                         "n = len(list_models(checkpoints=True)); catalog.resolve('resnet18_imagenet_full')\n"
                         "print(n, sorted(m for m in sys.modules\n"
                         "                if m.startswith(('torch', 'brainscore_plugins.families.'))))",
                         {})
    assert process.stdout.split() == ["11727", "[]"], process.stderr[-2000:]
