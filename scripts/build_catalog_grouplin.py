"""Generate brainscore_plugins/data/grouplin.csv: the two algonauts23 GroupLin models (Lane & Kiar, 2023).

    python scripts/build_catalog_grouplin.py

The models are the GitHub release v0.1.0 assets of github.com/cmi-dair/algonauts23 (README "Results" table):
``grouplin_phase1.pt`` (GroupLin-P1: head trained on the frozen trunk; val median R^2 20.4 %, challenge test mean
noise-normalised R^2 58.8 %) and ``grouplin_phase2.pt`` (GroupLin-P2: trunk attention fine-tuned; 20.9 % / 60.3 %).
Evaluation preprocessing as the authors' ``create_transform(train=False)``: resize to 224 (bicubic), center crop
224, CLIP mean/std (the family's normalisation). The parameter count is the whole network's (trunk + head), on the
meta device. No region commitment is published: ``brainscore-plugins commit <identifier>`` computes one.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from brainscore_plugins import architectures  # noqa: E402
from catalog_tools import generate  # noqa: E402

FAMILY = "grouplin"
RELEASE = "https://github.com/cmi-dair/algonauts23/releases/download/v0.1.0"
ARCH = "grouplin_eva02_base"
NO_COMMITMENT = "none published: run `brainscore-plugins commit <identifier>`"
PHASES = {"phase1": ("grouplin-head", "GroupLin-P1"), "phase2": ("grouplin-finetune", "GroupLin-P2")}


def build_rows() -> list[dict]:
    rows = []
    for phase, (method, _) in PHASES.items():
        rows.append({
            "identifier": f"{FAMILY}_{phase}", "model_id": phase, "epoch": "", "latest": 1, "arch": ARCH,
            "training_method": method, "checkpoint_format": method, "dataset": "nsd-algonauts2023",
            "num_classes": 0, "weights_key": "encoder", "url": f"{RELEASE}/grouplin_{phase}.pt", "hf_repo": "",
            "weights_file": f"algonauts23/grouplin_{phase}.pt", "sha256": "", "resize": 224, "crop": 224,
            "interpolation": "bicubic", "n_params": architectures.count_parameters(ARCH, method, 0),
            "V1": "", "V2": "", "V4": "", "IT": "", "readout": "", "commitment_source": NO_COMMITMENT,
            "unsupported": "",
        })
    return rows


def main() -> None:
    generate(FAMILY, __doc__, build_rows, lambda rows: f"{len(rows)} models")


if __name__ == "__main__":
    main()
