"""Generate brainscore_plugins/data/svenc.csv: the vision encoders of ScalingVisionEncoder (Matsuyama et al., 2023).

    python scripts/build_catalog_svenc.py

The models and their weights as the study's ``models/model.py`` names them (github.com/suyamat/ScalingVisionEncoder):
timm ``eva02_enormous_patch14_clip_224.laion2b_plus``, ``eva02_large_patch14_clip_224.merged2b``,
``eva02_base_patch16_clip_224.merged2b``, ``eva_giant_patch14_clip_224.merged2b`` and
``convnext_xxlarge.clip_laion2b_soup_ft_in1k`` (timm's Hugging Face repositories, ``model.safetensors``);
model ids are the study's own names (lower case: ``internimage``, ``one-peace`` for its ``InternImage``,
``ONE-PEACE``). Input sizes and interpolation are timm's pretrained configs (crop_pct 1.0,
bicubic). The parameter count is the network's (head included) on the meta device; the study's table rounds it
(4.4B, 0.3B, 0.086B, 1.0B, 0.85B). InternImage-G (``internimage_g_22kto1k_512``, 512 px, bicubic, ImageNet
mean/std: the official test transform) and ONE-PEACE's vision branch (256 px, bicubic, CLIP mean/std: its
``hub_interface``) are built here. No region commitment is published.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from brainscore_plugins import architectures  # noqa: E402
from catalog_tools import generate  # noqa: E402

FAMILY = "svenc"
ONE_PEACE_URL = "https://one-peace-shanghai.oss-accelerate.aliyuncs.com/one-peace.pt"  # the README's link, over TLS
NO_COMMITMENT = "none published: run `brainscore-plugins commit <identifier>`"
# study model id -> (timm name, pretrained tag, training method, head outputs, input size)
TIMM_MODELS = {
    "eva-clip-giant": ("eva_giant_patch14_clip_224", "merged2b", "clip", 1024, 224),
    "eva02-clip-base": ("eva02_base_patch16_clip_224", "merged2b", "clip", 512, 224),
    "eva02-clip-large": ("eva02_large_patch14_clip_224", "merged2b", "clip", 768, 224),
    "eva02-clip-enormous": ("eva02_enormous_patch14_clip_224", "laion2b_plus", "clip", 1024, 224),
    "clip-convnext": ("convnext_xxlarge", "clip_laion2b_soup_ft_in1k", "clip-finetuned", 1000, 256),
}


def _row(model_id: str, arch: str, method: str, checkpoint_format: str, num_classes: int, size: int, **source) -> dict:
    return {"identifier": f"{FAMILY}_{model_id}", "model_id": model_id, "epoch": "", "latest": 1,
            "arch": arch, "training_method": method, "checkpoint_format": checkpoint_format, "dataset": "",
            "num_classes": num_classes, "weights_key": "", "url": "", "hf_repo": "", "weights_file": "",
            "sha256": "", "resize": size, "crop": size, "interpolation": "bicubic",
            "n_params": architectures.count_parameters(arch, method, num_classes),
            "V1": "", "V2": "", "V4": "", "IT": "", "readout": "", "commitment_source": NO_COMMITMENT,
            "unsupported": "", **source}


def build_rows() -> list[dict]:
    timm_rows = [_row(model_id, name, method, "timm-safetensors", classes, size, dataset=tag,
                      hf_repo=f"timm/{name}.{tag}", weights_file="model.safetensors")
                 for model_id, (name, tag, method, classes, size) in TIMM_MODELS.items()]
    return timm_rows + [
        _row("internimage", "internimage_g_22kto1k_512", "supervised", "internimage", 1000, 512, dataset="in22k-in1k",
             weights_key="model", hf_repo="OpenGVLab/InternImage", weights_file="internimage_g_22kto1k_512.pth"),
        _row("one-peace", "one-peace", "multimodal", "one-peace", 0, 256, dataset="one-peace-pretraining",
             weights_key="model", url=ONE_PEACE_URL, weights_file="one-peace/one-peace.pt"),
    ]


def main() -> None:
    generate(FAMILY, __doc__, build_rows, lambda rows: f"{len(rows)} encoders")


if __name__ == "__main__":
    main()
