"""Submittable plugins: `brainscore-plugins package` writes a self-contained Brain-Score model plugin that passes what
the Brain-Score site runs, in an environment without this package."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainscore_core.plugin_management.handle_metadata import validate_metadata_file
from brainscore_core.plugin_management.parse_plugin_changes import get_plugin_ids
from brainscore_plugins import errors, forge, packaging, settings

# a ResNet, an EMA model (ConvNeXt: model_ema_state_dict) and a self-supervised one (SimCLR)
SELECTION = ["spvvs_resnet18_imagenet_full", "spvvs_convnext_tiny_imagenet_full_seed-0",
             "spvvs_simclr_resnet18_imagenet_full_seed-0"]
NAME = "spvvs_trio"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("package") / NAME
    return packaging.package(SELECTION, out)


def test_the_folder_registers_exactly_the_selection_and_imports_nothing_of_ours(packaged):
    folder = packaged.folder
    assert get_plugin_ids("models", [folder.name], str(_as_models_dir(folder).parent)) == SELECTION
    assert {p.name for p in folder.iterdir()} >= {"__init__.py", "model.py", "test.py", "requirements.txt",
                                                  "metadata.yaml", "region_layer_map", "provenance", "vendor"}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n and n.split(".")[0] in ("brainscore_plugins", "region_commitment") for n in names), \
                    f"{path.relative_to(folder)} imports {names}"
    requirements = (folder / "requirements.txt").read_text().split()
    assert "brainscore_plugins" not in " ".join(requirements) and "albumentations<2" in requirements
    for identifier in SELECTION:
        assert json.loads((folder / "region_layer_map" / f"{identifier}.json").read_text()).keys() == {
            "V1", "V2", "V4", "IT"}
    rows = (folder / "vendor" / "brainscore_plugins" / "data" / "spvvs.csv").read_text().splitlines()
    assert len(rows) == 1 + len(SELECTION)  # the header and the chosen rows only
    runtime = folder / "vendor" / "brainscore_plugins"
    vendored = {p.relative_to(runtime).as_posix() for p in runtime.rglob("*.py")}
    package = Path(packaging.__file__).parent
    expected = {p.relative_to(package).as_posix() for p in package.rglob("*.py")
                if p.relative_to(package).parts[0] not in ("scale", "models", "benchmarks")}
    assert vendored == {p for p in expected if not p.startswith("families/") or p in ("families/__init__.py",
                                                                                      "families/spvvs.py")}
    assert {"factory.py", "weights/fetch.py", "weights/unpickle.py", "weights/formats.py"} <= vendored


def _as_models_dir(folder: Path) -> Path:
    """get_plugin_ids wants <root>/models/<name>: a view of the folder under a directory called models."""
    view = folder.parent / "view" / "models"
    view.mkdir(parents=True, exist_ok=True)
    if not (view / folder.name).exists():
        (view / folder.name).symlink_to(folder)
    return view


def test_metadata_is_valid_for_brainscore_and_the_zip_holds_the_folder(packaged):
    problems, document = validate_metadata_file(str(packaged.folder / "metadata.yaml"))
    assert problems == [] and set(document["models"]) == set(SELECTION)
    with zipfile.ZipFile(packaged.zip) as archive:
        names = set(archive.namelist())
    on_disk = {f"{NAME}/{p.relative_to(packaged.folder)}" for p in packaged.folder.rglob("*") if p.is_file()}
    assert names == on_disk and packaged.size_bytes == packaged.zip.stat().st_size


def test_refusals_leave_nothing_behind(tmp_path):
    with pytest.raises(errors.NotCommittedError, match="brainscore-plugins commit hlvit_vits14_1.0_1"):
        packaging.package(["hlvit_vits14_1.0_1"], tmp_path / "hl")
    with pytest.raises(ValueError, match="Python identifier"):
        packaging.package(SELECTION[:1], tmp_path / "Bad-Name")
    with pytest.raises(errors.ModelNotFoundError):
        packaging.package(["spvvs_nope"], tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        packaging.package(SELECTION[:1], tmp_path / "taken")


def _clean_environment(root: Path) -> Path:
    """A venv that sees the installed third-party packages but not this one: its site-packages holds a copy of
    brainscore_vision without plugins, and a .pth naming our venv's site-packages (whose own .pth files, e.g. the
    editable install of this package, are not processed). Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    (site / "shared.pth").write_text(f"{ours}\n")
    source = ours / "brainscore_vision"
    shutil.copytree(source, site / "brainscore_vision", ignore=lambda folder, names: (
        [n for n in names if n != "__init__.py"] if Path(folder) == source / "models" else ["__pycache__"]))
    resources = site / "brainscore_vision" / "model_helpers" / "generic_plugin_tests_resources"
    resources.mkdir(exist_ok=True)  # the wheel leaves out the generic tests' three probe images
    for i, name in enumerate(("rgb1.jpg", "rgb2.jpg", "rgb3.png")):
        if not (resources / name).exists():
            pixels = np.random.RandomState(i).randint(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(resources / name)
    return python


@pytest.mark.slow
def test_the_zip_passes_brainscores_generic_tests_and_its_own_in_a_clean_environment(packaged, tmp_path):
    python = _clean_environment(tmp_path / "env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BRAINSCORE_PLUGINS"))}
    env.update({settings.MIRROR: str(tmp_path / "mirror"), settings.CACHE: str(tmp_path / "cache"),
                settings.DATA: str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", "BS_INSTALL_DEPENDENCIES": "no",
                "RESULTCACHING_DISABLE": "1", "RESULTCACHING_HOME": str(tmp_path / "rc"), "MPLBACKEND": "Agg"})

    def run(*args):
        return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=1200)

    probe = run("-c", "import importlib.util as u, brainscore_vision; print(u.find_spec('brainscore_plugins'), "
                      "u.find_spec('region_commitment'), brainscore_vision.__file__)")
    assert probe.stdout.split()[:2] == ["None", "None"], probe.stdout + probe.stderr
    models = Path(probe.stdout.split()[2]).parent / "models"
    with zipfile.ZipFile(packaged.zip) as archive:
        archive.extractall(models)
    lines = (models / NAME / "requirements.txt").read_text().split()
    requirements = [re.split(r"[<>=!~]", line)[0] for line in lines]
    missing = run("-c", "import importlib.metadata as m, sys; [m.version(r) for r in sys.argv[1:]]", *requirements)
    assert missing.returncode == 0, missing.stderr[-2000:]
    for identifier in SELECTION:
        forge.forge_into_mirror(identifier, tmp_path / "mirror")

    generic = run("-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                  str(models.parent / "model_helpers" / "generic_plugin_tests.py"),
                  "--plugin_directory", str(models / NAME))
    assert generic.returncode == 0, generic.stdout[-4000:] + generic.stderr[-2000:]
    assert "15 passed" in generic.stdout, generic.stdout[-2000:]  # 5 tests x 3 identifiers
    own = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(models / NAME / "test.py"))
    assert own.returncode == 0, own.stdout[-4000:] + own.stderr[-2000:]
    assert f"{len(SELECTION) + 1} passed" in own.stdout


@pytest.mark.parametrize("zip_only", [False, True])
def test_two_runs_to_one_output_leave_the_winners_package(tmp_path, monkeypatch, zip_only):
    """Another run publishes the same output while this one builds: this one fails and leaves the winner's files."""
    output = tmp_path / ("plugin.zip" if zip_only else "plugin")
    write_folder, raced = packaging._write_folder, []

    def racing(folder, identifiers):
        if not raced:
            raced.append(None)
            raced[0] = packaging.package(SELECTION[1:2], output)  # the other run wins meanwhile
        write_folder(folder, identifiers)
    monkeypatch.setattr(packaging, "_write_folder", racing)
    with pytest.raises(FileExistsError, match="was written by another run meanwhile"):
        packaging.package(SELECTION[:1], output)
    winner = raced[0]
    with zipfile.ZipFile(winner.zip) as archive:
        init = archive.read("plugin/__init__.py").decode()
    assert SELECTION[1] in init and SELECTION[0] not in init  # the winner's zip, not overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == (["plugin.zip"] if zip_only else ["plugin", "plugin.zip"])
