"""Layers point one way: ``region_commitment`` (for any Brain-Score model) never imports ``brainscore_plugins``; inside
``brainscore_plugins`` a module imports only from its own layer or those below it (:data:`LAYERS`), the modules
form no import circle, and the scale wing is imported by the command line alone."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS = (  # lowest first; a module belongs to the layer of the longest prefix that names it
    ("foundation", ("errors", "settings", "npy_memmap", "cache_files")),
    ("building blocks", ("weights", "architectures", "preprocessing", "pixel_cache", "synthetic_recordings",
                         "algonauts.data", "algonauts.splits", "algonauts.predictor")),
    ("family declarations", ("families",)),
    ("catalog", ("catalog",)),
    ("models", ("candidates", "committed_maps", "provenance", "fast_activations", "forge", "factory")),
    ("benchmarks and plugins", ("algonauts", "benchmarks", "models", "bridge", "plugin_sources", "packaging", "demo",
                                "__init__")),
    ("scale wing", ("scale",)),
    ("command line", ("cli", "__main__")),
)


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


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module of ``root`` (dotted, relative to it; ``__init__`` for the package itself) -> the modules of ``root`` it
    imports, relative or absolute, anywhere in the file. ``from package import name`` counts as importing the
    submodule ``name`` where there is one, else the package."""
    modules = {_module(p, root): p for p in root.rglob("*.py")}
    top = root.name
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        package = "" if name == "__init__" else package
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == top:
                target = node.module.partition(".")[2]
            elif isinstance(node, ast.Import):
                edges.update(a.name.partition(".")[2] or "__init__" for a in node.names if a.name.split(".")[0] == top)
                continue
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                edges.add(sub if sub in modules else target or "__init__")
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def layer_of(module: str) -> int:
    matches = [(len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"brainscore_plugins.{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("folder, forbidden", [("region_commitment", "brainscore_plugins"),
                                               ("brainscore_plugins/architectures", "region_commitment")])
def test_no_reverse_import(folder, forbidden):
    offenders = [path for path, names in _imported_packages(REPO / folder).items() if forbidden in names]
    assert offenders == [], f"{forbidden} imported by {offenders}"


def test_the_scan_sees_imports_inside_functions(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def f():\n    from brainscore_plugins.weights.fetch import cache_dir\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _imported_packages(tmp_path / "pkg") == {"pkg/m.py": {"brainscore_plugins"}}


def test_no_upward_import_and_no_circle():
    graph = import_graph(REPO / "brainscore_plugins")
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))
    assert upward == [], f"imports of a higher layer (see LAYERS): {upward}"
    assert circles(graph) == []


def test_only_the_command_line_imports_the_scale_wing():
    graph = import_graph(REPO / "brainscore_plugins")
    importers = {a for a, targets in graph.items() for b in targets
                 if b.split(".")[0] == "scale" and a.split(".")[0] != "scale"}
    assert importers == {"cli"}


def test_the_graph_sees_relative_and_absolute_imports_and_circles(tmp_path):
    pkg = tmp_path / "brainscore_plugins"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from brainscore_plugins import a\nimport brainscore_plugins.sub\nx = 1\n")
    graph = import_graph(pkg)
    assert graph == {"__init__": {"a"}, "a": {"sub.b"}, "sub": set(), "sub.b": {"a", "sub"}}
    assert circles(graph) == [["a", "sub.b"]]
    assert layer_of("scale.laws.fitting") > layer_of("factory") > layer_of("catalog") > layer_of("families.svenc")


@pytest.mark.slow
def test_importing_region_commitment_loads_no_brainscore_plugins_module():
    code = ("import sys, region_commitment, region_commitment.reference, region_commitment.selection; "
            "print(sorted(m for m in sys.modules if m.startswith('brainscore_plugins')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
