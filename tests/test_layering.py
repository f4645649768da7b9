"""Layers point one way: ``region_commitment`` (for any Brain-Score model) never imports ``brainscore_plugins``, and
the architecture builders never import ``region_commitment``."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imported_packages(folder: Path) -> dict[str, set[str]]:
    """File -> top-level packages it imports (absolute imports, anywhere in the file, function bodies included)."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


@pytest.mark.parametrize("folder, forbidden", [("region_commitment", "brainscore_plugins"),
                                               ("brainscore_plugins/architectures", "region_commitment")])
def test_no_reverse_import(folder, forbidden):
    offenders = [path for path, names in _imported_packages(REPO / folder).items() if forbidden in names]
    assert offenders == [], f"{forbidden} imported by {offenders}"


def test_the_scan_sees_imports_inside_functions(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def f():\n    from brainscore_plugins.hub import cache_dir\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _imported_packages(tmp_path / "pkg") == {"pkg/m.py": {"brainscore_plugins"}}


def test_importing_region_commitment_loads_no_brainscore_plugins_module():
    code = ("import sys, region_commitment, region_commitment.reference, region_commitment.selection; "
            "print(sorted(m for m in sys.modules if m.startswith('brainscore_plugins')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
