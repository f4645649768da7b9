"""Shared fixtures. Tests run offline: weights are forged into a temporary mirror, caches are per session."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))  # the catalog generators' helpers (spvvs_ids, catalog_tools)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The study's published tables (CI clones the repository with shared/ beside it)."""
    path = REPO.parent / "shared" / "reference" / "scaling_primate_vvs"
    assert path.is_dir(), f"published tables not found at {path}"
    return path


@pytest.fixture(scope="session")
def offline_env(tmp_path_factory) -> dict:
    """Environment for subprocesses and in-process loads: a forged-weights mirror, an empty cache."""
    from brainscore_plugins import settings
    root = tmp_path_factory.mktemp("offline")
    env = {settings.MIRROR: str(root / "mirror"), settings.CACHE: str(root / "cache"),
           "BS_INSTALL_DEPENDENCIES": "no", "RESULTCACHING_DISABLE": "1",
           "RESULTCACHING_HOME": str(root / "result_caching")}
    return env


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory):
    """Brain-Score caches ceilings and activations on disk by identifier; synthetic test data must never meet a
    stale entry from another run. region_commitment's feature cache is per session, and its PCA reference set is the
    built-in one unless a test asks for Brain-Score's (tests never download ImageNet); committed maps go to a
    per-session data folder."""
    os.environ["RESULTCACHING_DISABLE"] = "1"
    os.environ["REGION_COMMITMENT_CACHE"] = str(tmp_path_factory.mktemp("region_commitment_cache"))
    os.environ["REGION_COMMITMENT_REFERENCE"] = "builtin"
    os.environ["BRAINSCORE_PLUGINS_DATA"] = str(tmp_path_factory.mktemp("user_data"))  # what `commit` writes


@pytest.fixture
def offline(offline_env, monkeypatch) -> dict:
    for key, value in offline_env.items():
        monkeypatch.setenv(key, value)
    return offline_env


def use_mirror(mirror: Path, cache: Path, monkeypatch) -> Path:
    """Point the package at ``mirror`` (forged weights) and the empty ``cache``, with the Hugging Face Hub offline."""
    from brainscore_plugins import settings
    monkeypatch.setenv(settings.MIRROR, str(mirror))
    monkeypatch.setenv(settings.CACHE, str(cache))
    monkeypatch.setenv(settings.HF_HUB_OFFLINE, "1")
    return mirror


@pytest.fixture(scope="session")
def linked():
    """Our plugins visible to brainscore_vision (the README's install command has already done this)."""
    from brainscore_plugins import bridge
    bridge.link()
    return bridge


def run_python(code: str, env: dict, timeout: int = 900):
    """Run ``code`` in a fresh interpreter (as a user would) and return the completed process."""
    import subprocess
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
