"""GroupLin (Lane & Kiar, arXiv:2308.02351; github.com/cmi-dair/algonauts23): a timm EVA-02 trunk and a
multi-subject linear encoding head that predicts NSD fMRI responses of the Algonauts 2023 challenge.

The head reads the trunk blocks :data:`LAYERS` (token grids ``(257, 768)``: class token + 16 x 16 patches); each is
projected to :data:`HIDDEN_DIM` by a rank-one "factorized" linear map (``weight2`` over channels, then ``weight1``
over tokens) and batch-normalised; the projections are averaged into one latent vector, mapped to :data:`PROJ_DIM`
by a shared linear map plus a subject-specific one, and embedded into the :data:`GROUP_VERTICES` group-space vertices
by the frozen group-PCA ``embed``. The prediction for subject ``s`` is the group prediction plus ``s``'s residual.
Parameter names are those of the authors' ``GroupLinearEncoder``, so their ``encoder`` state dict loads strictly.
"""
from __future__ import annotations

import re

import torch
from torch import nn

TRUNK = "eva02_base_patch14_224.mim_in22k"
LAYERS = ("blocks.0", "blocks.2", "blocks.4", "blocks.6", "blocks.8", "blocks.10")
TOKENS, CHANNELS = 257, 768
GROUP_VERTICES = 39548  # the union of the 8 subjects' challenge vertices (lh then rh, fsaverage order)
SUBJECTS = 8
PROJ_DIM, HIDDEN_DIM = 2048, 1024
PATTERN = re.compile(r"grouplin_eva02_base")


class FactorLinear2D(nn.Module):
    """``(N, L, C) -> (N, K)`` with a rank-one weight per output: ``sum_l weight1[k, l] * (x[:, l] @ weight2[k])``."""

    def __init__(self, tokens: int, channels: int, out_features: int):
        super().__init__()
        self.weight1 = nn.Parameter(torch.empty(out_features, tokens))
        self.weight2 = nn.Parameter(torch.empty(out_features, channels))
        nn.init.normal_(self.weight1, std=tokens ** -0.5)
        nn.init.normal_(self.weight2, std=channels ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sum(torch.matmul(x, self.weight2.t()) * self.weight1.t(), dim=-2)


class FeatureProjection(nn.Module):
    """One trunk layer's token grid -> the hidden vector (projection, then batch norm)."""

    def __init__(self, tokens: int, channels: int, hidden_dim: int):
        super().__init__()
        self.proj = FactorLinear2D(tokens, channels, hidden_dim)
        self.norm = nn.BatchNorm1d(hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class GroupLinear(nn.Module):
    """Every subject's own linear map, computed at once; ``forward`` picks each sample's subject."""

    def __init__(self, in_features: int, out_features: int, subjects: int):
        super().__init__()
        self.subjects, self.out_features = subjects, out_features
        self.fc = nn.Linear(in_features, subjects * out_features)

    def forward(self, x: torch.Tensor, subjects: torch.Tensor) -> torch.Tensor:
        out = self.fc(x).view(len(x), self.subjects, self.out_features)
        return torch.take_along_dim(out, subjects.view(-1, 1, 1), 1).squeeze(1)


class GroupLinearEncoder(nn.Module):
    """The multi-subject head (the authors' ``encoder`` state dict)."""

    def __init__(self, n_layers: int = len(LAYERS), tokens: int = TOKENS, channels: int = CHANNELS,
                 hidden_dim: int = HIDDEN_DIM, proj_dim: int = PROJ_DIM, out_dim: int = GROUP_VERTICES,
                 subjects: int = SUBJECTS):
        super().__init__()
        self.feat_projs = nn.ModuleList(FeatureProjection(tokens, channels, hidden_dim) for _ in range(n_layers))
        self.shared_proj = nn.Linear(hidden_dim, proj_dim, bias=False)
        self.subj_proj = GroupLinear(hidden_dim, proj_dim, subjects)
        self.embed = nn.Linear(proj_dim, out_dim)

    def forward(self, features: list[torch.Tensor], subjects: torch.Tensor | None = None) -> torch.Tensor:
        latent = torch.stack([proj(x) for proj, x in zip(self.feat_projs, features)]).mean(dim=0)
        prediction = self.embed(self.shared_proj(latent))
        if subjects is not None:
            prediction = prediction + self.embed(self.subj_proj(latent, subjects))
        return prediction


class GroupLin(nn.Module):
    """Trunk + head: images ``(N, 3, 224, 224)`` (CLIP-normalised) -> group-space fMRI ``(N, 39548)``; with
    ``subjects`` (0-based subject indices, ``subj01`` = 0), each sample's subject-specific prediction."""

    def __init__(self, trunk: nn.Module, encoder: GroupLinearEncoder, layers: tuple[str, ...] = LAYERS):
        super().__init__()
        self.trunk, self.encoder, self.layers = trunk, encoder, layers

    def forward(self, images: torch.Tensor, subjects: torch.Tensor | None = None) -> torch.Tensor:
        captured = {}
        handles = [self.trunk.get_submodule(layer).register_forward_hook(
            lambda module, inputs, output, layer=layer: captured.__setitem__(layer, output)) for layer in self.layers]
        try:
            self.trunk(images)
        finally:
            for handle in handles:
                handle.remove()
        return self.encoder([captured[layer] for layer in self.layers], subjects)


def build_trunk() -> nn.Module:
    """The EVA-02 base trunk (timm, random weights, no classifier)."""
    import timm
    return timm.create_model(TRUNK, pretrained=False)


def build() -> GroupLin:
    return GroupLin(build_trunk(), GroupLinearEncoder())
