"""Adding a model family is one module, one generator script, one CSV and `brainscore-plugins generate`.

A toy family (its own architecture and checkpoint format) is added to a copy of the package exactly as the README's
"Adding a model family" says; the test counts the files that changed and uses the new identifiers end to end
(catalog, command line, forged checkpoint, strict load, Brain-Score activations model, generated plugin folder).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest


FAMILY_MODULE = '''
"""toy: a made-up study, to show what a model family declares."""
from functools import partial

from torch import nn

from .. import architectures
from ..weights.formats import CheckpointFormat
from ..preprocessing import TRAINING_CONFIG
from . import Family, register


def build_toynet(match, num_classes):
    width = int(match["width"])
    return nn.Sequential(nn.Conv2d(3, width, 3, 2), nn.ReLU(), nn.Conv2d(width, width, 3, 2), nn.ReLU(),
                         nn.Conv2d(width, width, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))


architectures.register("toynet", architectures.ArchSpec("ToyNet", __import__("re").compile(r"toynet(?P<width>\\d+)"),
                                                        build_toynet))


def forge(prefix, entry, state_dict, seed):
    return {"epoch": entry.epoch, "weights": {prefix + k: v for k, v in state_dict.items()}, "seed": seed}


FAMILY = register(Family(
    prefix="toy",
    title="toy (nobody, 2026)",
    summary="Toy networks, to test that a family is one declaration.",
    generator="scripts/build_catalog_toy.py",
    citation="@misc{toy2026, title={Toy}}",
    formats={"toy-pickle": CheckpointFormat(None, "net.", partial(forge, "net."))},
    preprocessing=TRAINING_CONFIG,
    published_counts={"models": 2, "checkpoints": 4},
    test_identifiers=("toy_toynet8_seed-0",),
    requirements=("torch",),
))
'''

GENERATOR = '''
"""Generate brainscore_plugins/data/toy.csv."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from catalog_tools import output_argument, write_rows  # noqa: E402

rows = []
for model_id in ("toynet8_seed-0", "toynet16_seed-0"):
    for epoch in (1, 2):
        rows.append({"identifier": f"toy_{model_id}.ep{epoch}", "model_id": model_id, "epoch": epoch,
                     "latest": int(epoch == 2), "arch": model_id.split("_")[0], "training_method": "supervised",
                     "checkpoint_format": "toy-pickle", "dataset": "toyset", "num_classes": 10,
                     "weights_key": "weights", "url": f"https://example.org/toy/{model_id}/ep{epoch}.pt",
                     "hf_repo": "", "weights_file": f"{model_id}/ep{epoch}.pt", "sha256": "", "resize": 40,
                     "crop": 32, "interpolation": "bilinear", "n_params": "", "V1": "", "V2": "", "V4": "",
                     "IT": "", "readout": "", "commitment_source": "none published", "unsupported": ""})
parser = argparse.ArgumentParser()
output_argument(parser)
print(write_rows("toy", rows, parser.parse_args().output))
'''

USE = '''
import json, sys
import numpy as np
from PIL import Image
import brainscore_plugins
from brainscore_plugins import candidates, catalog, factory, forge

root = sys.argv[1]
forge.forge_into_mirror("toy_toynet8_seed-0", root + "/mirror")
entry = catalog.resolve("toy_toynet8_seed-0")
model = factory.create_model("toy_toynet8_seed-0")
Image.fromarray(np.random.RandomState(0).randint(0, 255, (48, 48, 3), dtype=np.uint8)).save(root + "/image.png")
activations = factory.activations_model("toy_toynet8_seed-0")([root + "/image.png"], layers=["5"])
print("RESULT" + json.dumps({"package": brainscore_plugins.__file__, "epoch": entry.epoch,
                             "ids": catalog.identifiers("toy", checkpoints=True),
                             "layers": candidates.for_entry(entry), "shape": list(activations.shape),
                             "fc": model[-1].out_features}))
'''


def _snapshot(root) -> dict:
    snapshot = {}
    for folder in ("brainscore_plugins", "scripts"):
        for dirpath, dirnames, filenames in os.walk(root / folder):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                path = os.path.join(dirpath, name)
                snapshot[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return snapshot


@pytest.mark.slow
def test_a_new_family_is_one_module_one_script_one_csv_and_generate(tmp_path, offline, repo):
    copy = tmp_path / "copy"
    ignore = shutil.ignore_patterns("__pycache__", "layer_scores", "provenance", "behavioral_readout")
    shutil.copytree(repo / "brainscore_plugins", copy / "brainscore_plugins", ignore=ignore)
    shutil.copytree(repo / "scripts", copy / "scripts", ignore=ignore)
    before = _snapshot(copy)
    env = {**os.environ, **offline, "PYTHONPATH": str(copy), "BRAINSCORE_PLUGINS_MIRROR": str(tmp_path / "mirror")}

    def run(*args):
        process = subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True,
                                 timeout=600)
        assert process.returncode == 0, process.stderr[-3000:]
        return process.stdout

    (copy / "brainscore_plugins" / "families" / "toy.py").write_text(textwrap.dedent(FAMILY_MODULE).lstrip())
    (copy / "scripts" / "build_catalog_toy.py").write_text(textwrap.dedent(GENERATOR).lstrip())
    run("scripts/build_catalog_toy.py")
    generated = run("-m", "brainscore_plugins.cli", "generate")
    assert "toy: 6 registry lines, 0 region maps" in generated

    changed = {path for path, digest in _snapshot(copy).items() if before.get(path) != digest}
    assert changed == {"brainscore_plugins/families/toy.py", "scripts/build_catalog_toy.py",
                       "brainscore_plugins/data/toy.csv", "brainscore_plugins/models/toy/__init__.py",
                       "brainscore_plugins/models/toy/model.py", "brainscore_plugins/models/toy/test.py",
                       "brainscore_plugins/models/toy/requirements.txt"}, "a new family touched other files"
    assert set(before) - set(_snapshot(copy)) == set()

    listed = run("-m", "brainscore_plugins.cli", "list", "--family", "toy").split()
    assert listed == ["toy_toynet8_seed-0", "toy_toynet16_seed-0"]  # catalog order
    result = json.loads(run("-c", USE, str(tmp_path)).split("RESULT", 1)[1])
    assert result["package"].startswith(str(copy))
    assert result["epoch"] == 2 and len(result["ids"]) == 6 and result["fc"] == 10
    assert result["layers"] == ["1", "3", "5", "6"]  # the default block-output rule: activations, then the pool
    assert result["shape"] == [1, 8 * 3 * 3]
    init = (copy / "brainscore_plugins" / "models" / "toy" / "__init__.py").read_text()
    assert init.count("model_registry[") == 6 and "toy_toynet8_seed-0.ep1" in init
