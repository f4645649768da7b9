"""The offline end-to-end run of the README's first command.

Forges a checkpoint for a catalogued identifier (random weights of the real architecture, published nesting) into a
local mirror, then lets Brain-Score itself load the model through our plugin and score it on the bundled synthetic
benchmark: the same path a real identifier takes once its weights are reachable.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from . import bridge, forge, settings


def run_demo(identifier: str, benchmark: str, workdir: str | None = None) -> float:
    """Forge, load, score; the forged mirror and caches go to ``workdir`` (kept) or a temporary folder (removed)."""
    if workdir is not None:
        return _run(identifier, benchmark, Path(workdir))
    with tempfile.TemporaryDirectory(prefix="brainscore-plugins-demo-") as temporary:
        return _run(identifier, benchmark, Path(temporary))


def _run(identifier: str, benchmark: str, workdir: Path) -> float:
    mirror = workdir / "mirror"
    os.environ[settings.MIRROR] = str(mirror)
    os.environ[settings.CACHE] = str(workdir / "cache")
    os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")  # everything is installed already
    os.environ.setdefault("RESULTCACHING_DISABLE", "1")    # forged weights: nothing worth caching
    if not bridge.is_linked():
        print("\n".join(bridge.link()))
    start = time.perf_counter()
    path = forge.forge_into_mirror(identifier, mirror)
    print(f"forged {identifier} -> {path}")

    import brainscore_vision
    model = brainscore_vision.load_model(identifier)
    print(f"brainscore_vision.load_model -> {type(model).__name__}, "
          f"region map {dict(model.layer_model.region_layer_map)}")
    score = brainscore_vision.score(identifier, benchmark)
    print(f"score({identifier!r}, {benchmark!r}) = {float(score):.4f} "
          f"(raw {float(score.raw):.4f}, ceiling {float(score.ceiling):.4f}); {time.perf_counter() - start:.0f} s")
    return float(score)
