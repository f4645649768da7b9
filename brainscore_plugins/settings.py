"""Every environment variable ``brainscore_plugins`` reads, read here only and lazily (at call time, so a variable
set after import counts). ``region_commitment`` has its own (:mod:`region_commitment.settings`);
:func:`variables` lists both for docs/environment.md and ``brainscore-plugins --help``.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from region_commitment.settings import VARIABLES as COMMITMENT_VARIABLES, Variable

MIRROR = "BRAINSCORE_PLUGINS_MIRROR"
CACHE = "BRAINSCORE_PLUGINS_CACHE"
LOCK_TIMEOUT = "BRAINSCORE_PLUGINS_LOCK_TIMEOUT"
DATA = "BRAINSCORE_PLUGINS_DATA"
PREPROCESSING = "BRAINSCORE_PLUGINS_PREPROCESSING"
ALGONAUTS = "BRAINSCORE_PLUGINS_ALGONAUTS_DIR"
EXTRACTOR = "BRAINSCORE_PLUGINS_EXTRACTOR"
EXTRACTORS = ("fast", "fast-channels-last", "brainscore")
PRECISION = "BRAINSCORE_PLUGINS_PRECISION"
PRECISIONS = ("float32", "bfloat16", "float16")
PIXEL_CACHE = "BRAINSCORE_PLUGINS_PIXEL_CACHE_GB"
HF_HUB_OFFLINE = "HF_HUB_OFFLINE"
OMP_NUM_THREADS = "OMP_NUM_THREADS"  # OpenMP's; Ray sets it to a task's CPUs
HF_HUB_CACHE = "HF_HUB_CACHE"
INSTALL_DEPENDENCIES = "BS_INSTALL_DEPENDENCIES"  # Brain-Score's own
_INSTALL_WARNED = "BRAINSCORE_PLUGINS_INSTALL_WARNED"  # set once warned: the sweep's model processes inherit it

VARIABLES = (
    Variable(MIRROR, "unset", "read-only folder of weights files at their catalog paths (weights_file), searched "
                              "before the cache and the network"),
    Variable(CACHE, "brainscore_plugins in torch's hub folder ($TORCH_HOME/hub)",
             "downloaded weights, their recorded sha256, lock files, commitment features and scores"),
    Variable(LOCK_TIMEOUT, "600", "seconds a download waits for another process's lock on the same weights file "
                                  "before giving up (a negative number: no limit)"),
    Variable(DATA, "brainscore-plugins in the user data folder ($XDG_DATA_HOME, else ~/.local/share)",
             "what `commit` writes: region maps, readout layers, score tables, plots and provenance"),
    Variable(PREPROCESSING, "the family's default",
             "image pipeline of every model: 'brainscore', 'training-config' or 'unnormalized'"),
    Variable(EXTRACTOR, "fast", "activations extractor of every model: 'fast' (images decoded and preprocessed "
                                "ahead of the network, into the pixel cache, equal activations), 'fast-channels-last' "
                                "(also channels-last batches: faster on CPUs, equal to float32 rounding) or "
                                "'brainscore' (Brain-Score's PytorchWrapper as it is)"),
    Variable(PRECISION, "float32", "arithmetic of every model's forward pass: 'float32', or 'bfloat16' / 'float16' "
                                   "(mixed precision under torch.autocast, activations returned as float32; "
                                   "faster on GPUs, other numbers: named in the activations identifier and the "
                                   "results' precision column; needs a fast extractor)"),
    Variable(PIXEL_CACHE, "10", "GB of preprocessed images kept in <cache>/pixels (one entry per image files x "
                                "preprocessing, shared by every model and process; least recently used evicted "
                                "first); 0 turns it off"),
    Variable(ALGONAUTS, "unset", "the Algonauts 2023 challenge data folder (algonauts_2023_challenge_data: subj01 "
                                 "... subj08) that the algonauts2023 benchmarks read"),
    Variable(OMP_NUM_THREADS, "unset", "OpenMP's threads (Ray sets it to a task's CPUs); also bounds the worker "
                                       "processes that decode images"),
    Variable(HF_HUB_OFFLINE, "unset", "1: Hugging Face Hub files come from its cache only (no network)"),
    Variable(HF_HUB_CACHE, "huggingface_hub's default", "where huggingface_hub caches Hub files"),
    Variable(INSTALL_DEPENDENCIES, "yes", "Brain-Score's: 'no' skips its `pip install -r requirements.txt` of every "
                                          "plugin it loads (about a minute per load); our plugins warn once when it "
                                          "is not 'no'"),
)


def cores() -> int:
    """The CPU cores this process may use: those of its CPU affinity (a SLURM or cgroup cpuset; every core where the
    system has none), at most ``$OMP_NUM_THREADS`` where it is a positive number (Ray sets it to a task's CPUs)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    value = os.environ.get(OMP_NUM_THREADS, "")
    return max(1, min(available, int(value))) if value.isdigit() and int(value) > 0 else available


def mirror() -> Path | None:
    value = os.environ.get(MIRROR)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """``$BRAINSCORE_PLUGINS_CACHE``, else ``brainscore_plugins`` in torch's hub folder."""
    value = os.environ.get(CACHE)
    if value:
        return Path(value).expanduser()
    import torch.hub
    return Path(torch.hub.get_dir()) / "brainscore_plugins"


def pixel_cache_bytes() -> int:
    """``$BRAINSCORE_PLUGINS_PIXEL_CACHE_GB`` in bytes (default 10 GB; 0 turns the cache off)."""
    value = os.environ.get(PIXEL_CACHE)
    try:
        gigabytes = float(value) if value else 10.0
    except ValueError:
        raise ValueError(f"{PIXEL_CACHE} is {value!r}; set it to a number of gigabytes (0 turns the cache "
                         f"off)") from None
    return max(0, int(gigabytes * 1e9))


def visible_cuda_devices() -> list[str] | None:
    """The devices ``$CUDA_VISIBLE_DEVICES`` names (CUDA's own variable), ``None`` when it is unset."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [device.strip() for device in value.split(",") if device.strip() and not device.strip().startswith("-")]


def lock_timeout() -> float:
    """``$BRAINSCORE_PLUGINS_LOCK_TIMEOUT`` seconds, else 600."""
    value = os.environ.get(LOCK_TIMEOUT)
    try:
        return float(value) if value else 600.0
    except ValueError:
        raise ValueError(f"{LOCK_TIMEOUT}={value!r} is not a number of seconds") from None


def data_dir() -> Path:
    """``$BRAINSCORE_PLUGINS_DATA``, else ``brainscore-plugins`` in the user data folder (never the installed
    package)."""
    value = os.environ.get(DATA)
    if value:
        return Path(value).expanduser()
    import platformdirs
    return Path(platformdirs.user_data_dir("brainscore-plugins", appauthor=False))


def preprocessing() -> str | None:
    return os.environ.get(PREPROCESSING) or None


def extractor() -> str:
    """``$BRAINSCORE_PLUGINS_EXTRACTOR`` (one of :data:`EXTRACTORS`; default ``fast``)."""
    value = os.environ.get(EXTRACTOR) or EXTRACTORS[0]
    if value not in EXTRACTORS:
        raise ValueError(f"${EXTRACTOR} is {value!r}; set it to one of {', '.join(EXTRACTORS)}")
    return value


def given(variable: str) -> str:
    """``variable``'s value as set ('' when unset), unchecked: what a failed row records of a value refused."""
    return os.environ.get(variable, "")


def precision() -> str:
    """``$BRAINSCORE_PLUGINS_PRECISION`` (default ``float32``)."""
    value = os.environ.get(PRECISION) or PRECISIONS[0]
    if value not in PRECISIONS:
        raise ValueError(f"${PRECISION} is {value!r}; set it to one of {', '.join(PRECISIONS)}")
    return value


def algonauts_dir() -> Path | None:
    value = os.environ.get(ALGONAUTS)
    return Path(value).expanduser() if value else None


def hf_offline() -> bool:
    from huggingface_hub import constants
    return constants.HF_HUB_OFFLINE or os.environ.get(HF_HUB_OFFLINE, "").upper() in ("1", "ON", "YES", "TRUE")


def hf_cache() -> str | None:
    return os.environ.get(HF_HUB_CACHE) or None


def warn_dependency_installs() -> None:
    """Say once per run, on stderr, that Brain-Score runs pip for every plugin it loads unless
    ``BS_INSTALL_DEPENDENCIES=no`` (the run's processes share the once: the variable :data:`_INSTALL_WARNED`)."""
    value = os.environ.get(INSTALL_DEPENDENCIES, "yes")
    if value == "no" or os.environ.get(_INSTALL_WARNED):
        return
    os.environ[_INSTALL_WARNED] = "1"
    print(f"warning: {INSTALL_DEPENDENCIES}={value}: Brain-Score runs `pip install -r requirements.txt` of every "
          f"plugin it loads (about a minute per load); set {INSTALL_DEPENDENCIES}=no when they are installed "
          f"already, as brainscore-plugins' are", file=sys.stderr, flush=True)


NOISE = (  # (message start, category, module): warnings for the libraries' maintainers, not for our users
    ("xarray subclass", "FutureWarning", ""),  # Brain-Score's classes lack __slots__
    ("'multi_class' was deprecated", "FutureWarning", ""),  # sklearn, once per layer of Brain-Score's readouts
    ("Mean of empty slice", "RuntimeWarning", "brainscore_vision.metrics.i1i2.metric"),  # images without trials
)


def quiet_libraries() -> None:
    """Silence :data:`NOISE` and albumentations' update check (a network call and a line per process), here and,
    through the environment (``PYTHONWARNINGS``, ``NO_ALBUMENTATIONS_UPDATE``), in the processes this one starts."""
    import builtins
    import warnings
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    inherited = os.environ.get("PYTHONWARNINGS") or ""
    added = []
    for message, category, module in NOISE:
        warnings.filterwarnings("ignore", message=re.escape(message), category=getattr(builtins, category),
                                module=re.escape(module) + r"\Z" if module else "")
        entry = f"ignore:{message}:{category}:{module}"
        if entry not in inherited.split(","):
            added.append(entry)
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (inherited, *added)))


def installed_version(distribution: str) -> str:
    """The installed version of a distribution (``unknown`` when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def variables() -> tuple[Variable, ...]:
    """(name, default, meaning) of every variable read by ``brainscore_plugins`` and ``region_commitment``."""
    return VARIABLES + tuple(COMMITMENT_VARIABLES)


def help_text() -> str:
    """The variables as an ``argparse`` epilog."""
    width = max(len(name) for name, _, _ in variables())
    lines = [f"  {name:<{width}}  {meaning} (default: {default})" for name, default, meaning in variables()]
    return "environment variables:\n" + "\n".join(lines)
