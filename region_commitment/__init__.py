"""Fast, offline layer commitment for V1, V2, V4, IT and the behavioral readout with Brain-Score's semantics
(see :func:`commit`).

The names below are imported on first use (as Brain-Score's registries are), so ``import region_commitment.settings``
or ``region_commitment.errors`` stays cheap: no torch, no Brain-Score.
"""
import importlib

_EXPORTS = {
    "selection": ("BEHAVIOR", "REGIONS", "CommitmentResult", "commit"),
    "errors": ("BenchmarkUnavailableError", "CommitmentError", "DiskFullError", "InvalidTargetError",
               "RegionCommitmentError"),
    "factories": ("TARGET_FACTORIES", "load_target"),
    "protocol": ("LayerScore", "LayerView", "Target"),
    "layers": ("candidate_layers",),
    "targets": ("DEFAULT_BENCHMARKS", "RegionTarget", "from_assembly", "from_benchmark", "from_files",
                "stimulus_set_from_csv"),
    "behavior": ("BehaviorTarget", "from_behavioral_assembly", "from_behavioral_benchmark", "from_behavioral_files"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'region_commitment' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
