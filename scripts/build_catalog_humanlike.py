"""Generate brainscore_plugins/data/hlvit.csv: the 156 humanlike-vits models (Orhan, 2023).

    python scripts/build_catalog_humanlike.py

No table of the models is published; the ids come from the grid documented in the repository's README
(github.com/eminorhan/humanlike-vits): ``x_y_z`` with

* x (architecture) in vits14, vitb14, vitl14, vith14, vith14@448, vith14@476;
* y (fraction of the human-like video data used for MAE pretraining) in 1.0, 0.1, 0.01, 0.001, 0.0001;
* z (repeat of the subset selection) in 1, 2, 3, only 1 for y = 1.0;

78 ids, each pretrained (``hlvit_<id>``, Hugging Face file ``{x}/{id}.pth``) and ImageNet-finetuned
(``hlvit_<id>-finetuned``, file ``finetuned_{x}/{id}.pth``). Evaluation preprocessing as the author's
``test_model.py``: resize to size + 32 (bicubic), center crop size. No region commitment is published: the region
and readout columns stay empty (``brainscore-plugins commit <identifier>`` computes one).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from brainscore_plugins.architectures import humanlike  # noqa: E402
from catalog_tools import generate  # noqa: E402

FAMILY = "hlvit"
REPO_ID = "eminorhan/humanlike-vits"
FRACTIONS = ("1.0", "0.1", "0.01", "0.001", "0.0001")
SEEDS = ("1", "2", "3")
FINETUNED_SUFFIX = "-finetuned"
NO_COMMITMENT = "none published: run `brainscore-plugins commit <identifier>`"


def model_ids() -> list[str]:
    return [f"{x}_{y}_{z}" for x in humanlike.ARCHS for y in FRACTIONS
            for z in (SEEDS[:1] if y == "1.0" else SEEDS)]


def build_rows() -> list[dict]:
    rows = []
    for repo_id in model_ids():
        x, y, _ = repo_id.split("_")
        size = humanlike.image_size(x)
        for finetuned in (False, True):
            model_id = repo_id + (FINETUNED_SUFFIX if finetuned else "")
            filename = f"{'finetuned_' if finetuned else ''}{x}/{repo_id}.pth"
            rows.append({
                "identifier": f"{FAMILY}_{model_id}",
                "model_id": model_id,
                "epoch": "",
                "latest": 1,
                "arch": x,
                "training_method": "mae-finetuned" if finetuned else "mae",
                "checkpoint_format": "mae-finetune" if finetuned else "mae-pretrain",
                "dataset": f"humanlike-video-{y}",
                "num_classes": 1000 if finetuned else 0,
                "weights_key": "model",
                "url": "",
                "hf_repo": REPO_ID,
                "weights_file": filename,
                "sha256": "",
                "resize": size + 32,
                "crop": size,
                "interpolation": "bicubic",
                "n_params": "",
                "V1": "", "V2": "", "V4": "", "IT": "", "readout": "",
                "commitment_source": NO_COMMITMENT,
                "unsupported": "",
            })
    return rows


def main() -> None:
    generate(FAMILY, __doc__, build_rows,
             lambda rows: f"{len(rows)} models ({len(model_ids())} ids, pretrained and finetuned)")


if __name__ == "__main__":
    main()
