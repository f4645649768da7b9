"""Provenance of every region map: catalog labels against commitments.json, ``provenance.map_provenance``, the load-time
log line, the selection-overlap warning of ``score``, and ``brainscore-plugins info``."""
import json
import logging
import re
import subprocess
import sys
from collections import Counter

import pytest

import spvvs_ids
from brainscore_plugins import catalog, cli, factory, provenance, settings

LABEL = re.compile(r"published:(?P<key>[^/]+)/(?P<data>[^/]+)/(?P<seed>seed-\d+)"
                   r"|borrowed-from:(?P<bkey>[^/]+)/(?P<bdata>[^/]+)/(?P<bseed>seed-\d+) \((?P<rule>[a-z-]+)\)"
                   r"|architecture-rule:CORnet-S anatomical commitment")
HLVIT = "hlvit_vits14_1.0_1"


@pytest.fixture(scope="module")
def commitments(reference_dir):
    return json.loads((reference_dir / "commitments.json").read_text())


@pytest.fixture(scope="module")
def models():
    """One entry per study model id (its latest checkpoint)."""
    return [entry for entry in catalog.entries("spvvs") if entry.latest]


def _kind(source: str) -> str:
    match = LABEL.fullmatch(source)
    assert match, source
    return f"borrowed:{match['rule']}" if match["rule"] else source.split(":", 1)[0]


def _own_entry(entry: catalog.Entry) -> tuple[str, str, str]:
    """(key, data, seed) of the model's own commitments.json entry, derived here independently of the generator:
    SimCLR / DINO under a supervised key file under ``<method>_<samples>``, adversarial runs under ``adv_<samples>``."""
    key = spvvs_ids.commitment_key(entry.arch, entry.training_method)
    samples = re.search(rf"_{re.escape(entry.dataset)}_(\d+|full)(?=_|$)", entry.model_id)
    samples = samples.group(1) if samples else "full"
    if entry.training_method == "adversarial":
        data = f"adv_{samples}"
    elif entry.training_method in ("simclr", "dino") and not key.startswith(entry.training_method + "_"):
        data = f"{entry.training_method}_{samples}"
    else:
        data = f"{entry.dataset}_{samples}"
    seed = re.search(r"seed-(\d+)", entry.model_id)
    return key, data, f"seed-{seed.group(1) if seed else 0}"


def test_label_counts(models):
    counts = Counter(_kind(entry.commitment_source) for entry in models)
    assert counts == {"published": 166, "borrowed:same-arch-data": 560, "borrowed:same-arch-imagenet": 42,
                      "borrowed:sibling-arch": 8, "borrowed:variant": 4, "architecture-rule": 31}
    assert sum(counts.values()) == 811
    for entry in catalog.entries("spvvs"):  # every checkpoint, not only the latest
        _kind(entry.commitment_source)


def test_published_only_for_the_models_own_entry(models, commitments):
    """``published`` names the model's own key / data / seed, the map is that entry's, and no entry is claimed twice."""
    claimed = Counter()
    for entry in models:
        match = LABEL.fullmatch(entry.commitment_source)
        if not match["key"]:
            continue
        assert (match["key"], match["data"], match["seed"]) == _own_entry(entry), entry.model_id
        published = commitments[match["key"]][match["data"]][match["seed"]]
        assert entry.region_layer_map == published["region2layer"], entry.model_id
        assert entry.readout == published["behavioral_readout_layer"], entry.model_id
        claimed[entry.commitment_source] += 1
    assert max(claimed.values()) == 1


def test_models_without_an_own_entry_say_where_their_map_comes_from(models, commitments):
    """Every model whose own entry is missing from commitments.json is labelled borrowed (never published), and the
    entry it names holds exactly its map."""
    for entry in models:
        if entry.arch == "cornet_s":
            continue
        key, data, seed = _own_entry(entry)
        match = LABEL.fullmatch(entry.commitment_source)
        if seed not in commitments.get(key, {}).get(data, {}):
            assert match["rule"], entry.model_id
        elif match["rule"]:  # the own entry exists, but this id is a variant of the run it was filed for
            assert match["rule"] == "variant" and (match["bkey"], match["bdata"], match["bseed"]) == (key, data, seed)
        if match["rule"]:
            lent = commitments[match["bkey"]][match["bdata"]][match["bseed"]]
            assert entry.region_layer_map == lent["region2layer"], entry.model_id


@pytest.mark.parametrize("prefix, expected", [
    ("simclr_", {"published": 6, "borrowed:same-arch-data": 30, "borrowed:same-arch-imagenet": 14}),
    ("adv_", {"published": 5, "borrowed:same-arch-data": 30, "borrowed:same-arch-imagenet": 20,
              "borrowed:variant": 3}),
    ("resnet18_infimnist_", {"borrowed:same-arch-imagenet": 7}),
    ("resnet34_imagenet21kP-class-5000", {"borrowed:same-arch-imagenet": 1}),
])
def test_the_reviewed_groups(models, prefix, expected):
    assert Counter(_kind(e.commitment_source) for e in models if e.model_id.startswith(prefix)) == expected


def test_simclr_models_with_an_own_entry_get_it(commitments):
    for arch, key in [("resnet34", "ResNet34"), ("resnet101", "ResNet101"), ("resnet152", "ResNet152")]:
        entry = catalog.resolve(f"simclr_{arch}_imagenet_full_seed-0")
        assert entry.commitment_source == f"published:{key}/simclr_full/seed-0"
        assert entry.region_layer_map == commitments[key]["simclr_full"]["seed-0"]["region2layer"]
        subset = catalog.resolve(f"simclr_{arch}_imagenet_10_seed-0")
        assert subset.commitment_source == f"borrowed-from:{key}/simclr_full/seed-0 (same-arch-data)"
    assert catalog.resolve("simclr_resnet50_imagenet_full_seed-0").commitment_source == \
        "published:simclr_resnet50/imagenet_full/seed-0"
    assert catalog.resolve("dino_vit_small_imagenet_full_seed-0").commitment_source == \
        "published:dino_vit_small/imagenet_full/seed-0"


def test_provenance_of_a_published_map():
    record = provenance.map_provenance("resnet18_imagenet_full")
    assert record["kind"] == "published"
    assert record["entry"] == {"file": "commitments.json", "key": "ResNet18", "data": "imagenet_full",
                               "seed": "seed-0"}
    assert record["region_layer_map"] == catalog.resolve("resnet18_imagenet_full").region_layer_map
    assert record["selection"]["benchmarks"] == {
        "V1": "FreemanZiemba2013public.V1-pls", "V2": "FreemanZiemba2013public.V2-pls",
        "V4": "MajajHong2015public.V4-pls", "IT": "MajajHong2015public.IT-pls"}
    assert "layer_selection.py" in record["selection"]["source"]


def test_provenance_of_a_borrowed_map():
    record = provenance.map_provenance("spvvs_resnet18_infimnist_100_seed-0")
    assert record["kind"] == "borrowed" and record["rule"] == "same-arch-imagenet"
    assert record["from"] == {"file": "commitments.json", "key": "ResNet18", "data": "imagenet_full",
                              "seed": "seed-0"}
    assert record["rule_text"] == provenance.BORROW_RULES["same-arch-imagenet"]
    assert record["region_layer_map"] == provenance.map_provenance("resnet18_imagenet_full")["region_layer_map"]


def test_provenance_of_cornet_s():
    record = provenance.map_provenance("cornet_s_imagenet_full_seed-0")
    assert record == {"kind": "architecture-rule", "rule": "CORnet-S anatomical commitment",
                      "region_layer_map": {r: f"{r}.output" for r in ("V1", "V2", "V4", "IT")},
                      "behavioral_readout_layer": "decoder.avgpool"}


COMMITTED = {"benchmarks": {"IT": {"identifier": "MajajHong2015public.IT-pls", "digest": "sha256:00ab"},
                            "behavior": {"identifier": "Rajalingham2018public-i2n", "digest": "sha256:00cd"}},
             "reference": {"kind": "built-in", "n_images": 1000}, "n_components": 1000,
             "layers": {"mode": "default", "candidates": ["blocks.0", "norm", "fc_norm"]},
             "versions": {"brainscore_plugins": "test"}, "date": "2025-01-01T00:00:00Z"}


@pytest.fixture
def committed_plugin(tmp_path, monkeypatch):
    """The data folder where ``brainscore-plugins commit`` wrote a map, readout and provenance record for HLVIT."""
    monkeypatch.setenv(settings.DATA, str(tmp_path))
    folder = tmp_path / "commitments" / "hlvit"
    for sub, content in [("region_layer_map", {"IT": "blocks.0"}), ("behavioral_readout",
                         {"behavioral_readout_layer": "fc_norm"}), ("provenance", {"kind": "committed", **COMMITTED})]:
        (folder / sub).mkdir(parents=True)
        (folder / sub / f"{HLVIT}.json").write_text(json.dumps(content))
    return folder


def test_provenance_of_a_committed_map(committed_plugin):
    assert provenance.map_provenance(HLVIT) == {"kind": "committed", **COMMITTED}
    (committed_plugin / "provenance" / f"{HLVIT}.json").unlink()  # a map committed before records existed
    record = provenance.map_provenance(HLVIT)
    assert record["kind"] == "committed" and f"brainscore-plugins commit {HLVIT}" in record["note"]


def test_provenance_of_a_model_without_a_map(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.DATA, str(tmp_path))
    assert provenance.map_provenance(HLVIT) == {"kind": "uncommitted",
                                             "reason": catalog.resolve(HLVIT).commitment_source}


def _provenance_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == provenance.__name__ and r.levelno == logging.WARNING]


def test_loading_a_borrowed_map_logs_where_it_came_from(caplog):
    with caplog.at_level(logging.WARNING, logger=provenance.__name__):
        factory.brain_model("resnet18_imagenet_full", pretrained=False)
        assert _provenance_warnings(caplog) == []  # the model's own published map: nothing to say
        factory.brain_model("resnet18_infimnist_100_seed-0", pretrained=False)
    [line] = _provenance_warnings(caplog)
    assert "\n" not in line and "borrowed from ResNet18/imagenet_full/seed-0" in line and "same-arch-imagenet" in line


def test_loading_a_committed_map_logs_its_benchmarks(committed_plugin, caplog):
    with caplog.at_level(logging.WARNING, logger=provenance.__name__):
        model = factory.brain_model(HLVIT, pretrained=False)
    assert model.layer_model.region_layer_map == {"IT": "blocks.0"}
    [line] = _provenance_warnings(caplog)
    assert "\n" not in line and "committed" in line and "IT: MajajHong2015public.IT-pls" in line
    assert COMMITTED["date"] in line


@pytest.mark.parametrize("benchmark, regions", [
    ("MajajHong2015public.IT-pls", ["V4", "IT"]),       # the benchmark that chose IT, and V4 on the same images
    ("MajajHong2015public.V4-pls", ["V4", "IT"]),
    ("FreemanZiemba2013public.V2-pls", ["V1", "V2"]),
    ("MajajHong2015.IT-pls", []),                      # the private, held-out images
    ("Rajalingham2018public-i2n", []),                 # the study chose no readout on data
    ("bsp-synthetic.IT-pls", []),
])
def test_score_warns_when_the_benchmark_data_chose_the_layers(benchmark, regions):
    for name in ("resnet18_imagenet_full", "resnet18_infimnist_100_seed-0"):  # published and borrowed alike
        warning = provenance.selection_overlap(name, benchmark)
        assert (warning is not None) == bool(regions)
        if regions:
            assert "\n" not in warning and "optimistic" in warning
            assert re.findall(r"\b(V1|V2|V4|IT|behavior): ", warning) == regions


def test_score_warning_for_committed_and_rule_maps(committed_plugin):
    assert "IT: MajajHong2015public.IT-pls" in provenance.selection_overlap(HLVIT, "MajajHong2015public.V4-pls")
    assert "behavior: Rajalingham2018public-i2n" in provenance.selection_overlap(HLVIT, "Rajalingham2018public-i2n")
    assert provenance.selection_overlap(HLVIT, "FreemanZiemba2013public.V1-pls") is None
    assert provenance.selection_overlap("cornet_s_imagenet_full_seed-0", "MajajHong2015public.IT-pls") is None


def test_benchmark_data_family():
    assert provenance.benchmark_data("MajajHong2015public.IT-pls") == "MajajHong2015public"
    assert provenance.benchmark_data("Rajalingham2018public-i2n") == "Rajalingham2018public"
    assert provenance.benchmark_data("bsp-synthetic-i2n") == provenance.benchmark_data("bsp-synthetic.IT-pls")


def test_cli_score_warns_before_scoring(monkeypatch, caplog, capsys, linked):
    import argparse
    import brainscore_vision
    from brainscore_core.metrics import Score
    monkeypatch.setattr(brainscore_vision, "score", lambda model, benchmark: Score(0.5))
    with caplog.at_level(logging.WARNING):
        for benchmark in ("MajajHong2015public.IT-pls", "MajajHong2015.IT-pls"):
            cli._score(argparse.Namespace(words=["resnet18_imagenet_full", benchmark], results=None, no_results=True))
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [
        "spvvs_resnet18_imagenet_full MajajHong2015public.IT-pls",  # the study id names our latest
        "spvvs_resnet18_imagenet_full MajajHong2015.IT-pls"]
    [record] = [r for r in caplog.records if r.name == cli.__name__]
    assert "MajajHong2015public.IT-pls shares data" in record.getMessage()


@pytest.mark.slow
def test_cli_info_prints_the_provenance(repo):
    process = subprocess.run([sys.executable, "-m", "brainscore_plugins.cli", "info",
                              "simclr_resnet34_imagenet_full_seed-0"], capture_output=True, text=True, cwd=repo,
                             timeout=120)
    assert process.returncode == 0, process.stderr
    row = json.loads(process.stdout)
    assert row["commitment_source"] == "published:ResNet34/simclr_full/seed-0"
    assert row["map_provenance"]["kind"] == "published"
    assert row["map_provenance"]["entry"]["data"] == "simclr_full"
    assert row["map_provenance"]["region_layer_map"] == {k: row[k] for k in ("V1", "V2", "V4", "IT")}
