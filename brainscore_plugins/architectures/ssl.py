"""The study's self-supervised training modules (``training/src/models/ssl.py``), minus losses and hooks.

``wrap_ssl_model`` takes the supervised classifier's ``module`` as backbone and sets its classifier attribute to
``nn.Identity`` (``fc`` for ResNets, ``head`` for timm ViTs); unless ``should_reconstruct_model`` (commented out in
every published config) it does not flatten it. ``SSLBase`` subclasses Composer's ``ComposerModel`` directly, so
the checkpoint's ``state['model']`` keys carry no ``module.`` prefix:

SimCLR (``SimCLR``)
    ``backbone.<torchvision/timm names>`` (no ``backbone.fc.*`` / ``backbone.head.*``) and
    ``head.layers.{0,1,3,4}.*`` -- lightly's ``SimCLRProjectionHead(in_dim, 2048, 128, num_layers=2,
    batch_norm=True)``: Linear(in, 2048, bias=False), BatchNorm1d, ReLU, Linear(2048, 128, bias=False),
    BatchNorm1d. The configs' ``ssl_out_dim``/``ssl_hidden_dim``/``ssl_bn_in_head`` never reach the constructor
    (its arguments are ``out_dim``/``hidden_dim``/``use_bn_in_head``), so the class defaults hold.
    ``NTXentLoss`` stores nothing.
DINO (``DINO``)
    ``student_backbone.*``, ``teacher_backbone.*`` (a deep copy), ``student_head.*``, ``teacher_head.*``
    (lightly ``DINOProjectionHead(in_dim, 2048, 256, 65536, batch_norm=False)``: ``layers.{0,2,4}`` Linear with
    bias, GELUs between, ``last_layer.weight_g`` (65536, 1) / ``last_layer.weight_v`` (65536, 256) from
    ``nn.utils.weight_norm``) and ``loss_func.center`` (1, 1, 65536): lightly's ``DINOLoss`` registers its
    centering vector as a persistent buffer (lightly 1.5.1 and 1.6.0 alike). Again ``ssl_out_dim`` (60000 in
    some dino_resnet50 configs) and ``ssl_bn_in_head`` are not constructor arguments, so out_dim is 65536.
    Brain-Score reads the teacher (``extract_features`` defaults to ``teacher``; commitments name
    ``teacher_backbone.*``).

Both wrappers' ``forward(images)`` is the study's eval-mode ``extract_features``: ``backbone(images).flatten(1)``
(DINO: the teacher backbone).

Layer names of the SimCLR commitments. ``brainscore/src/benchmark_model.py`` scores SSL models through
``model.backbone`` (so region layers are backbone-relative: ``layer1.0.conv1``), whereas
``layer_selection.py`` keeps the wrapper (names ``backbone.*``: ``simclr_vit_small`` uses ``backbone.blocks.N``
throughout, ``simclr_resnet50`` reads out ``backbone.avgpool``); ``simclr_resnet18``'s readout ``backbone.8``
is the ninth child (``avgpool``) of the flattened backbone ``nn.Sequential(*list(resnet.children())[:-1])``
that ``should_reconstruct_model`` would build. To let every published name resolve on one module whose
``state_dict()`` is exactly the checkpoint's, the SimCLR wrapper carries *aliases*: each top-level child of the
backbone is also reachable from the wrapper (``layer1`` is ``backbone.layer1``), and a ResNet backbone also
answers the flattened indices ``backbone.0`` .. ``backbone.8``. Aliases are the same module objects (a forward
hook on either name fires), are entries of ``_modules`` (Brain-Score's ``PytorchWrapper.get_layer`` walks
``_modules``) and are listed by ``named_modules()``, but are hidden from ``state_dict()`` /
``load_state_dict()``; parameters are counted once.
"""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

SIMCLR_HIDDEN, SIMCLR_OUT = 2048, 128
DINO_HIDDEN, DINO_BOTTLENECK, DINO_OUT = 2048, 256, 65536


def strip_classifier(backbone: nn.Module) -> int:
    """``wrap_ssl_model``'s surgery: the classifier attribute becomes ``nn.Identity``; returns the feature size."""
    for name in ("fc", "classifier", "head"):
        layer = getattr(backbone, name, None)
        if isinstance(layer, nn.Module):
            in_dim = getattr(layer, "in_features", None) or getattr(backbone, "num_features")
            setattr(backbone, name, nn.Identity())
            return int(in_dim)
    raise ValueError(f"cannot find the classifier of {type(backbone).__name__}")


class SimCLRHead(nn.Module):
    """lightly's ``SimCLRProjectionHead(in_dim, 2048, 128, num_layers=2, batch_norm=True)``."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, SIMCLR_HIDDEN, bias=False), nn.BatchNorm1d(SIMCLR_HIDDEN),
                                    nn.ReLU(), nn.Linear(SIMCLR_HIDDEN, SIMCLR_OUT, bias=False),
                                    nn.BatchNorm1d(SIMCLR_OUT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DINOHead(nn.Module):
    """lightly's ``DINOProjectionHead`` (no batch norm): 3-layer MLP to a bottleneck, weight-normed last layer."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, DINO_HIDDEN), nn.GELU(), nn.Linear(DINO_HIDDEN, DINO_HIDDEN),
                                    nn.GELU(), nn.Linear(DINO_HIDDEN, DINO_BOTTLENECK))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecates weight_norm in favour of parametrizations (new keys)
            self.last_layer = nn.utils.weight_norm(nn.Linear(DINO_BOTTLENECK, DINO_OUT, bias=False))
        nn.init.ones_(self.last_layer.weight_g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(nn.functional.normalize(self.layers(x), dim=-1, p=2))


class DINOLossState(nn.Module):
    """What ``DINOLoss`` keeps in a state dict: the teacher-output centre."""

    def __init__(self, out_dim: int = DINO_OUT):
        super().__init__()
        self.register_buffer("center", torch.zeros(1, 1, out_dim))


class _AliasedModule(nn.Module):
    """A module some of whose submodules are also registered under extra names (see module docstring)."""

    def _init_aliases(self) -> None:
        self._alias_entries: list[tuple[nn.Module, str]] = []

    def add_alias(self, parent: nn.Module, name: str, target: nn.Module) -> None:
        if name in parent._modules:
            return
        parent._modules[name] = target
        self._alias_entries.append((parent, name))

    @contextlib.contextmanager
    def _aliases_hidden(self):
        removed = [(parent, name, parent._modules.pop(name)) for parent, name in self._alias_entries]
        try:
            yield
        finally:
            for parent, name, module in removed:
                parent._modules[name] = module

    def state_dict(self, *args, **kwargs):
        with self._aliases_hidden():
            return super().state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        with self._aliases_hidden():
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        # Every real module once, then every alias path; parameters stay de-duplicated (they use their own memo).
        seen_names = set()
        with self._aliases_hidden():
            real = list(super().named_modules(memo, prefix, remove_duplicate))
        for name, module in real:
            seen_names.add(name)
            yield name, module
        for name, module in super().named_modules(None, prefix, remove_duplicate=False):
            if name not in seen_names:
                seen_names.add(name)
                yield name, module


class SimCLRModel(_AliasedModule):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self._init_aliases()
        in_dim = strip_classifier(backbone)
        self.backbone = backbone
        self.head = SimCLRHead(in_dim)
        children = list(backbone.named_children())
        for name, child in children:
            self.add_alias(self, name, child)
        if hasattr(backbone, "layer1") and children[-1][0] == "fc":  # ResNet: the flattened-Sequential indices
            for index, (_, child) in enumerate(children[:-1]):
                self.add_alias(backbone, str(index), child)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images).flatten(start_dim=1)


class DINOModel(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        in_dim = strip_classifier(student)
        strip_classifier(teacher)
        self.student_backbone = student
        self.student_head = DINOHead(in_dim)
        self.teacher_backbone = teacher
        self.teacher_head = DINOHead(in_dim)
        self.loss_func = DINOLossState()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.teacher_backbone(images).flatten(start_dim=1)
