"""Shared fixtures. Tests run offline: weights are forged into a temporary mirror, caches are per session.

Environment variables are set through ``monkeypatch`` (per test) or :func:`isolated_caches` (per session), never by
writing ``os.environ``; helpers tests share are fixtures here, never imported from another test module.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO / "scripts"))  # the catalog generators' helpers (spvvs_ids, catalog_tools)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository's root folder (where CI and a contributor run the tests from)."""
    return _REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The study's published tables (CI clones the repository with shared/ beside it)."""
    path = _REPO.parent / "shared" / "reference" / "scaling_primate_vvs"
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
    per-session data folder, weights and preprocessed pixels to a per-session cache. Undone when the session ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RESULTCACHING_DISABLE", "1")
        patch.setenv("REGION_COMMITMENT_CACHE", str(tmp_path_factory.mktemp("region_commitment_cache")))
        patch.setenv("REGION_COMMITMENT_REFERENCE", "builtin")
        patch.setenv("BRAINSCORE_PLUGINS_DATA", str(tmp_path_factory.mktemp("user_data")))  # what `commit` writes
        patch.setenv("BRAINSCORE_PLUGINS_CACHE", str(tmp_path_factory.mktemp("weights_cache")))  # and the pixels
        yield


@pytest.fixture
def offline(offline_env, monkeypatch) -> dict:
    for key, value in offline_env.items():
        monkeypatch.setenv(key, value)
    return offline_env


@pytest.fixture
def use_mirror(monkeypatch):
    """``use_mirror(mirror, cache) -> mirror``: point the package at ``mirror`` (forged weights) and the empty
    ``cache``, with the Hugging Face Hub offline, for this test."""
    from brainscore_plugins import settings

    def point(mirror: Path, cache: Path) -> Path:
        monkeypatch.setenv(settings.MIRROR, str(mirror))
        monkeypatch.setenv(settings.CACHE, str(cache))
        monkeypatch.setenv(settings.HF_HUB_OFFLINE, "1")
        return mirror
    return point


@pytest.fixture(scope="session")
def linked():
    """Our plugins visible to brainscore_vision (the README's install command has already done this)."""
    from brainscore_plugins import bridge
    bridge.link()
    return bridge


@pytest.fixture(scope="session")
def browser_executable() -> str:
    """The Chromium or Chrome binary the report's tests drive (:mod:`browser`: ``$BRAINSCORE_PLUGINS_TEST_BROWSER``,
    else one installed); the test fails with the one-line fix when there is none."""
    import browser
    try:
        return browser.find()
    except browser.BrowserNotFound as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def run_python():
    """``run_python(code, env, timeout=900)``: run ``code`` in a fresh interpreter (as a user would), with ``env``
    added to the environment, from the repository's root; the completed process."""
    def run(code: str, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=timeout, cwd=_REPO)
    return run


@pytest.fixture(scope="module")
def one_thread():
    """Tiny problems: one torch and BLAS thread (spin-waiting thread pools crawl on a busy 2-core machine)."""
    import torch
    from threadpoolctl import threadpool_limits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_store(monkeypatch):
    """``make_store(directory, arrays, block_columns=40)``: a feature store written as
    :func:`region_commitment.features.extract` writes it (two batches, column blocks of ``block_columns``)."""
    from region_commitment import features

    def write(directory: Path, arrays: dict, block_columns: int = 40) -> features.FeatureStore:
        n = len(next(iter(arrays.values())))
        monkeypatch.setattr(features, "BLOCK_BYTES", 4 * n * block_columns)
        directory.mkdir()
        shapes = {layer: values.shape for layer, values in arrays.items()}
        blocks = {layer: features._block_width(*shape) for layer, shape in shapes.items()}
        files = {layer: os.open(features._file(directory, layer), os.O_WRONLY | os.O_CREAT, 0o644)
                 for layer in arrays}
        try:
            for start, stop in [(0, n // 2), (n // 2, n)]:
                features._write(files, blocks, shapes, {k: v[start:stop] for k, v in arrays.items()}, start)
        finally:
            for file in files.values():
                os.close(file)
        paths = [f"image{i}.png" for i in range(n)]
        (directory / "done.json").write_text(json.dumps({"paths": paths, "shapes": shapes, "blocks": blocks}))
        return features.FeatureStore(directory)
    return write


def pytest_collection_modifyitems(config, items):
    """The generated plugin folders' own ``test.py`` (what the Brain-Score site runs: models loaded through
    Brain-Score) are slow; their templates name no marker of ours."""
    plugins = _REPO / "brainscore_plugins"
    for item in items:
        if item.path.is_relative_to(plugins):
            item.add_marker(pytest.mark.slow)
