"""Generate brainscore_plugins/data/spvvs.csv from the study's published tables.

    python scripts/build_catalog.py [--reference DIR]

DIR holds the study's artifacts (model_checkpoints.csv, benchmark_scores.csv, commitments.json, training_cfgs/);
by default ``../shared/reference/scaling_primate_vvs`` beside the repository. Rules (documented in README):

* latest checkpoint = the highest epoch of a model id (the published ``is_latest`` flag is missing for 57 ids);
* arch / method from the arch cell, or inferred from the model id where the cell is empty;
* number of classes by dataset as in the study's loader (``imagenet21kP-class-N``: N);
* EMA weights for ConvNeXt and DeiT (incl. flex variants), as the study's loader does;
* preprocessing from the training config of the arch (``defaults:`` chains resolved; bilinear when unset);
* region map (``commitment_source``): ``published:<key>/<data>/<seed>`` only for the model's own entry in
  commitments.json (its arch key, its own data key -- ``<dataset>_<samples>``; ``adv_<samples>`` for adversarial
  runs, ``simclr_<samples>`` for SimCLR under a supervised arch key -- and its seed; the id names its sample size
  and has no suffix after the seed). Every other map is ``borrowed-from:<key>/<data>/<seed> (<rule>)``, by the
  first rule that finds one: ``variant`` (the same entry, filed for the plain run of which this id is a variant),
  ``same-arch-data`` (same arch and data or method, another sample size or seed), ``same-arch-imagenet`` (the
  arch's supervised ImageNet entry), ``sibling-arch`` (an arch with the same layer names: a recipe ablation's
  torchvision base, a width variant's sibling). CORnet-S: ``architecture-rule:`` its anatomical commitment.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from brainscore_plugins import architectures  # noqa: E402
from catalog_tools import output_argument, write_rows  # noqa: E402
from spvvs_ids import arch_and_method, checkpoint_format, commitment_key  # noqa: E402

FAMILY = "spvvs"
DATASET_CLASSES = {"imagenet": 1000, "ecoset": 565, "imagenet21kP": 10450, "webvisionP": 4186,
                   "places365": 365, "inaturalist": 10000, "infimnist": 10}
DATASET_PATTERN = re.compile(r"_(imagenet21kP-class-\d+|imagenet21kP|imagenet|ecoset|webvisionP|webvision|"
                             r"places365|inaturalist|infimnist)(?:_(\d+|full))?(?=_|$)")
CORNET_COMMITMENT = {"V1": "V1.output", "V2": "V2.output", "V4": "V4.output", "IT": "IT.output",
                     "readout": "decoder.avgpool"}


def parse_model_id(model_id: str) -> tuple[str, str, int]:
    """(dataset, samples per class or 'full', seed) from a study model id."""
    match = DATASET_PATTERN.search(model_id)
    if not match:
        raise ValueError(f"no dataset in model id {model_id!r}")
    seed = re.search(r"seed-(\d+)", model_id)
    return match.group(1), match.group(2) or "full", int(seed.group(1)) if seed else 0


def num_classes(dataset: str) -> int:
    subset = re.fullmatch(r"imagenet21kP-class-(\d+)", dataset)
    return int(subset.group(1)) if subset else DATASET_CLASSES.get(dataset, 1000)


def load_config(cfg_dir: Path, relative: str) -> dict:
    config = yaml.safe_load((cfg_dir / relative).read_text()) or {}
    parent = config.pop("defaults", None)
    if parent:  # e.g. cfgs/runai/convnext/defaults.yaml
        config = {**load_config(cfg_dir, parent.split("cfgs/runai/", 1)[1]), **config}
    return config


def config_path(arch: str, method: str, cfg_dir: Path) -> str:
    if method in ("simclr", "dino"):
        specific = f"{method}/resnet/{arch}.yaml"
        return specific if (cfg_dir / specific).exists() else f"{method}/defaults.yaml"
    for prefix, path in [("convnext", "convnext/defaults.yaml"), ("deit", "deit/defaults.yaml"),
                         ("efficientnet", f"efficientnet/{arch}.yaml"), ("alexnet", "others/alexnet.yaml"),
                         ("cornet", "others/cornet_s.yaml"), ("vit_b_16", "vit/vit_b_16_runai.yaml"),
                         ("resnetflex", "resnet/resnetflexfilters.yaml")]:
        if arch.startswith(prefix):
            return path
    base = re.match(r"resnet\d+", arch)
    if base:
        return f"resnet/{base.group(0)}.yaml"
    raise ValueError(f"no training config for arch {arch!r}")


def fallback_keys(arch: str, commitments: dict) -> list[str]:
    """Keys of architectures with the same layer names, for archs without a commitment of their own:
    a recipe ablation (``resnet18-adam-001``) -> its torchvision base; a width variant -> its siblings."""
    base = re.fullmatch(r"resnet(\d+)-.+", arch)
    if base:
        return [f"ResNet{base.group(1)}"]
    family = arch.rsplit("-", 1)[0] + "-"
    return sorted(k for k in commitments if k.startswith(family) and k != arch)


def is_plain_run(model_id: str) -> bool:
    """Whether the id names its sample size and ends with its seed (or has none): the run a commitments.json entry of
    its (arch, data, seed) is filed for. Variants sharing that entry (the ``ffgsm_eps-2`` adversarial runs without a
    sample size, ``..._seed-0-50ep``) are not."""
    match = DATASET_PATTERN.search(model_id)
    return bool(match and match.group(2)) and re.fullmatch(r"(_.+)?_seed-\d+|", model_id[match.end():]) is not None


def data_prefix(key: str, method: str, dataset: str) -> str:
    """The prefix of a model's own data keys: ``adv`` for adversarial runs, the SSL method under a supervised arch key
    (``ResNet34/simclr_full``), else the dataset (also for ``simclr_resnet18/imagenet_full``)."""
    if method == "adversarial":
        return "adv"
    if method in ("simclr", "dino") and not key.startswith(method + "_"):
        return method
    return dataset


def pick_commitment(commitments: dict, keys: list[str], prefix: str, samples: str, seed: int, plain: bool):
    """(commitment, source) by the documented fallback order, or (None, reason). ``keys``: the arch's own key, then
    its siblings'; ``prefix``: the model's data-key prefix (:func:`data_prefix`); ``plain``: :func:`is_plain_run`."""
    for rank, key in enumerate(keys):
        by_data = commitments.get(key, {})
        own = [f"{prefix}_{samples}", f"{prefix}_full"]
        others = sorted(d for d in by_data if d.startswith(prefix + "_") and d not in own
                        and not d.endswith("_pretrained"))
        for data_key in [*own, *others, "imagenet_full"]:
            seeds = by_data.get(data_key, {})
            for seed_key in [f"seed-{seed}", *sorted(seeds)]:
                if seed_key in seeds:
                    entry = f"{key}/{data_key}/{seed_key}"
                    exact = rank == 0 and (data_key, seed_key) == (own[0], f"seed-{seed}")
                    if exact and plain:
                        return seeds[seed_key], f"published:{entry}"
                    rule = ("sibling-arch" if rank else "variant" if exact
                            else "same-arch-data" if data_key.startswith(prefix + "_") else "same-arch-imagenet")
                    return seeds[seed_key], f"borrowed-from:{entry} ({rule})"
    return None, f"no published commitment for {keys[0]}"


def build_rows(reference: Path) -> list[dict]:
    checkpoints = list(csv.DictReader(open(reference / "model_checkpoints.csv")))
    published = {}
    for row in csv.DictReader(open(reference / "benchmark_scores.csv")):
        published.setdefault(row["model_id"], row)
    commitments = json.loads((reference / "commitments.json").read_text())
    cfg_dir = reference / "training_cfgs"
    last_epoch = defaultdict(int)
    for row in checkpoints:
        last_epoch[row["model_id"]] = max(last_epoch[row["model_id"]], int(row["epoch"]))

    rows = []
    for row in sorted(checkpoints, key=lambda r: (r["model_id"], int(r["epoch"]))):
        model_id, epoch = row["model_id"], int(row["epoch"])
        arch, method = arch_and_method(model_id, row["arch"])
        dataset, samples, seed = parse_model_id(model_id)
        config = load_config(cfg_dir, config_path(arch, method, cfg_dir))
        n_params = published.get(model_id, {}).get("n_params", "")
        if arch == "cornet_s":
            commitment, source = None, "architecture-rule:CORnet-S anatomical commitment"
            regions = CORNET_COMMITMENT
        else:
            key = commitment_key(arch, method)
            commitment, source = pick_commitment(
                commitments, [key, *fallback_keys(arch, commitments)], data_prefix(key, method, dataset),
                samples, seed, is_plain_run(model_id))
            regions = ({**commitment["region2layer"], "readout": commitment["behavioral_readout_layer"]}
                       if commitment else {})
        rows.append({
            "identifier": f"{FAMILY}_{model_id}.ep{epoch}",
            "model_id": model_id,
            "epoch": epoch,
            "latest": int(epoch == last_epoch[model_id]),
            "arch": arch,
            "training_method": method,
            "checkpoint_format": checkpoint_format(method),
            "dataset": dataset,
            "num_classes": num_classes(dataset),
            "weights_key": "model_ema_state_dict" if ("convnext" in arch or "deit" in arch) else "model",
            "url": row["checkpoint_url"],
            "hf_repo": "",
            "weights_file": row["checkpoint_url"].split("/checkpoints/", 1)[1],
            "sha256": "",
            "resize": int(config.get("val_resize_size", 256)),
            "crop": int(config.get("val_crop_size", 224)),
            "interpolation": config.get("interpolation", "bilinear"),
            "n_params": int(float(n_params)) if n_params else "",
            **{region: regions.get(region, "") for region in ("V1", "V2", "V4", "IT")},
            "readout": regions.get("readout", ""),
            "commitment_source": source,
            "unsupported": architectures.unsupported_reason(arch, method) or "",
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path,
                        default=ROOT.parent / "shared" / "reference" / "scaling_primate_vvs")
    output_argument(parser)
    args = parser.parse_args()
    rows = build_rows(args.reference)
    out = write_rows(FAMILY, rows, args.output)
    print(f"{out}: {len(rows)} checkpoints of {len({r['model_id'] for r in rows})} model ids")


if __name__ == "__main__":
    main()
