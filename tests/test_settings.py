"""Environment variables: read in the two settings modules only, lazily, and listed in the README and --help."""
import ast
import os
import subprocess
import sys

import pytest

from brainscore_plugins import settings

SETTINGS_MODULES = {"brainscore_plugins/settings.py", "region_commitment/settings.py"}


def _reads_environment(node) -> bool:
    """``os.environ.get(...)``, ``os.getenv(...)``, ``os.environ[...]`` read, ``... in os.environ``."""
    def is_environ(n):
        return isinstance(n, ast.Attribute) and n.attr == "environ"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return (node.func.attr == "get" and is_environ(node.func.value)) or node.func.attr == "getenv"
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return is_environ(node.value)
    if isinstance(node, ast.Compare):
        return any(is_environ(c) for c in node.comparators)
    return False


@pytest.mark.slow
def test_only_the_settings_modules_read_environment_variables(repo):
    readers = []
    for package in ("brainscore_plugins", "region_commitment"):
        for path in sorted((repo / package).rglob("*.py")):
            relative = str(path.relative_to(repo))
            if relative in SETTINGS_MODULES:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if _reads_environment(node):
                    readers.append(f"{relative}:{node.lineno}")
    assert readers == [], f"read environment variables through a settings module: {readers}"


@pytest.mark.slow
def test_every_variable_is_in_the_docs_and_the_help(repo):
    readme = (repo / "docs" / "environment.md").read_text()
    help_text = subprocess.run([sys.executable, "-m", "brainscore_plugins.cli", "--help"], capture_output=True,
                               text=True, cwd=repo, timeout=120).stdout
    for variable in settings.variables():
        assert f"`{variable.name}`" in readme and variable.name in help_text, variable.name


@pytest.mark.parametrize("name, value", [(settings.MIRROR, "/somewhere/mirror"), (settings.CACHE, "/else/cache")])
def test_variables_are_read_when_used_not_at_import(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    read = settings.mirror() if name == settings.MIRROR else settings.cache_dir()
    assert str(read) == value


def test_dependency_installs_are_warned_once_per_run(monkeypatch, capsys):
    monkeypatch.delenv(settings.INSTALL_DEPENDENCIES, raising=False)
    monkeypatch.delenv(settings._INSTALL_WARNED, raising=False)
    settings.warn_dependency_installs()
    settings.warn_dependency_installs()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("set BS_INSTALL_DEPENDENCIES=no") == 1
    assert captured.err.startswith("warning: BS_INSTALL_DEPENDENCIES=yes: Brain-Score runs `pip install")
    import os
    assert os.environ[settings._INSTALL_WARNED] == "1"  # what the run's other processes inherit
    monkeypatch.delenv(settings._INSTALL_WARNED)
    monkeypatch.setenv(settings.INSTALL_DEPENDENCIES, "no")
    settings.warn_dependency_installs()
    assert capsys.readouterr().err == ""


def test_loading_through_our_plugins_warns_about_dependency_installs(monkeypatch, capsys):
    from brainscore_plugins import factory
    monkeypatch.delenv(settings.INSTALL_DEPENDENCIES, raising=False)
    monkeypatch.delenv(settings._INSTALL_WARNED, raising=False)
    factory.activations_model("spvvs_alexnet_imagenet_full_seed-0", pretrained=False)
    assert "set BS_INSTALL_DEPENDENCIES=no" in capsys.readouterr().err


def test_library_noise_is_silenced_here_and_in_child_processes(monkeypatch):
    import os
    import warnings
    monkeypatch.delenv("NO_ALBUMENTATIONS_UPDATE", raising=False)
    monkeypatch.setenv("PYTHONWARNINGS", "default::DeprecationWarning")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings.quiet_libraries()
        settings.quiet_libraries()
        warnings.warn("xarray subclass Score should explicitly define __slots__", FutureWarning)
        warnings.warn("'multi_class' was deprecated in version 1.5", FutureWarning)
        warnings.warn_explicit("Mean of empty slice", RuntimeWarning, "metric.py", 165,
                               module="brainscore_vision.metrics.i1i2.metric")
        warnings.warn("Mean of empty slice", RuntimeWarning)  # from this module: not Brain-Score's i1i2, kept
    assert [str(w.message) for w in caught] == ["Mean of empty slice"]
    assert os.environ["NO_ALBUMENTATIONS_UPDATE"] == "1"
    assert os.environ["PYTHONWARNINGS"].split(",") == ["default::DeprecationWarning"] + [
        f"ignore:{message}:{category}:{module}" for message, category, module in settings.NOISE]
    child = subprocess.run([sys.executable, "-c", "import warnings; warnings.warn('xarray subclass X should "
                            "explicitly define __slots__', FutureWarning); warnings.warn('kept', FutureWarning)"],
                           capture_output=True, text=True, timeout=60)
    assert "xarray subclass" not in child.stderr and "kept" in child.stderr


def test_the_cores_are_the_affinity_bounded_by_omp_num_threads(monkeypatch):
    """A SLURM or cgroup cpuset (the affinity) and a Ray task's CPUs ($OMP_NUM_THREADS) bound the decoding workers,
    not the node's core count."""
    from brainscore_plugins.fast_activations import _PrefetchingExtractor
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.delenv(settings.OMP_NUM_THREADS, raising=False)
    assert settings.cores() == 3
    for value, cores in [("2", 2), ("8", 3), ("0", 3), ("lots", 3)]:
        monkeypatch.setenv(settings.OMP_NUM_THREADS, value)
        assert settings.cores() == cores, value
    monkeypatch.setenv(settings.OMP_NUM_THREADS, "1")
    extractor = _PrefetchingExtractor.__new__(_PrefetchingExtractor)
    assert extractor._workers() == 1
    monkeypatch.delenv(settings.OMP_NUM_THREADS)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    assert extractor._workers() == 4
    extractor.workers = 0  # set by hand: no worker processes
    assert extractor._workers() == 0
