"""The README and docs/ stay true: their commands parse, their links and imports resolve, the README's tutorial runs.

Conventions the documentation follows (docs/README.md says them too):

* Every ``brainscore-plugins ...`` command line in a fenced ``bash`` block (``.venv/bin/brainscore-plugins`` and
  ``python -m brainscore_plugins`` too; ``VAR=value`` prefixes, ``\\`` continuations, ``&&`` / ``||`` / ``|`` / ``;``
  chains and comments allowed) must parse with the command line's own parser. A ``<placeholder>`` stands for a value
  the reader supplies; the test puts a dummy word in its place.
* The README's tutorial is the ``bash`` block after ``<!-- tutorial -->``; its expected standard output is the block
  after ``<!-- expected -->``. There, a line ``...`` stands for any number of lines, ``...`` inside a line for any
  text, runs of spaces for any whitespace, and decimal numbers match to 1e-3; lines starting with ``error:`` or
  ``warning:`` are expected on standard error instead.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
import math
import os
import re
import shlex
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
README = _REPO / "README.md"
MAX_README_LINES = 200
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"<[A-Za-z][^<>\n]*>")
OPERATORS = {"|", "||", "&&", ";", "&"}
REDIRECTIONS = {">", ">>", "<", ">&", "<&", "&>", "&>>"}
ENV_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
TOLERANCE = 1e-3
NUMBER = r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?"
STDERR_PREFIXES = ("error:", "warning:")
OUR_PACKAGES = ("brainscore_plugins", "region_commitment")


def _documents() -> list[Path]:
    return [README, *sorted((_REPO / "docs").rglob("*.md"))]


def _blocks(path: Path, languages: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line number, text) of each fenced block in ``languages``."""
    text = path.read_text()
    return [(text.count("\n", 0, match.start()) + 2, match.group(2)) for match in FENCE.finditer(text)
            if match.group(1) in languages]


def _logical_lines(block: str) -> list[str]:
    """The block's command lines, ``\\`` continuations joined."""
    return block.replace("\\\n", " ").splitlines()


def _commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (placeholders replaced, comments, redirections and env prefixes dropped)."""
    lexer = shlex.shlex(PLACEHOLDER.sub("PLACEHOLDER", line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current, skip_next = [], [], False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in OPERATORS:
            commands.append(current)
            current = []
        elif token in REDIRECTIONS:
            if current and current[-1].isdigit():
                current.pop()  # the file descriptor of 2> or 2>&1
            skip_next = True
        elif not current and ENV_PREFIX.match(token):
            continue
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def _cli_arguments(command: list[str]) -> list[str] | None:
    """The arguments after ``brainscore-plugins`` (or ``python -m brainscore_plugins``), or ``None``."""
    if Path(command[0]).name == "brainscore-plugins":
        return command[1:]
    if Path(command[0]).name.startswith("python") and command[1:3] == ["-m", "brainscore_plugins"]:
        return command[3:]
    return None


def _documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in _documents():
        for start, block in _blocks(path, ("bash", "sh", "shell")):
            for offset, line in enumerate(_logical_lines(block)):
                for command in _commands(line):
                    arguments = _cli_arguments(command)
                    if arguments is not None:
                        found.append((f"{path.relative_to(_REPO)}:{start + offset}", arguments))
    return found


def test_the_docs_show_commands():
    commands = _documented_commands()
    documented = {arguments[0] for _, arguments in commands if arguments}
    assert len(commands) > 30 and {"forge", "commit", "sweep", "results", "scaling", "report"} <= documented


@pytest.mark.parametrize("where, arguments", _documented_commands(), ids=lambda value: str(value)[:80])
def test_every_documented_command_parses(where, arguments):
    from brainscore_plugins import cli
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            cli.build_parser().parse_args(arguments)
    except SystemExit as stop:  # --help and --version exit 0; a usage error exits 2
        assert stop.code == 0, f"{where}: brainscore-plugins {shlex.join(arguments)}: {errors.getvalue().strip()}"


def test_every_command_has_a_reference_section():
    from brainscore_plugins import cli
    reference = (_REPO / "docs" / "reference.md").read_text()
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [name for name in commands if f"### `{name}" not in reference]
    assert missing == [], f"docs/reference.md has no '### `COMMAND`' section for {missing}"


def test_every_environment_variable_is_documented():
    from brainscore_plugins import settings
    page = (_REPO / "docs" / "environment.md").read_text()
    readme = README.read_text()
    for variable in settings.variables():
        assert f"`{variable.name}`" in page, f"docs/environment.md does not document {variable.name}"
        assert f"`{variable.name}`" in readme, f"the README does not name {variable.name}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@lru_cache(maxsize=None)
def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


def _links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return re.findall(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)


def test_relative_links_point_to_existing_files():
    broken = []
    for path in _documents():
        for link in _links(path):
            if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
                continue
            target, _, anchor = link.partition("#")
            resolved = (path.parent / target).resolve() if target else path
            if not resolved.exists():
                broken.append(f"{path.relative_to(_REPO)}: {link} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{path.relative_to(_REPO)}: {link} (no such heading)")
    assert broken == [], "\n".join(broken)


def _python_imports() -> list[tuple[str, str, str | None, list[tuple[str, str]]]]:
    """(where, module, name or None, [(bound name's attribute uses)]) of each import of our packages."""
    found = []
    for path in _documents():
        for start, block in _blocks(path, ("python", "py")):
            tree = ast.parse(block, filename=str(path))
            uses = [(node.value.id, node.attr) for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)]
            for node in ast.walk(tree):
                where = f"{path.relative_to(_REPO)}:{start + node.lineno - 1}" if hasattr(node, "lineno") else ""
                if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] in OUR_PACKAGES:
                    for alias in node.names:
                        bound = alias.asname or alias.name
                        found.append((where, node.module, alias.name, [a for n, a in uses if n == bound]))
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] in OUR_PACKAGES:
                            bound = alias.asname or alias.name
                            found.append((where, alias.name, None, [a for n, a in uses if n == bound]))
    return found


def test_python_examples_import_what_exists():
    assert len(_python_imports()) > 5
    missing = []
    for where, module_name, name, attributes in _python_imports():
        try:
            module = importlib.import_module(module_name)
            if name is not None:
                value = getattr(module, name) if hasattr(module, name) else \
                    importlib.import_module(f"{module_name}.{name}")
            else:
                value = module
        except (ImportError, AttributeError) as error:
            missing.append(f"{where}: from {module_name} import {name}: {error}")
            continue
        missing += [f"{where}: {module_name}{'.' + name if name else ''} has no {a}" for a in attributes
                    if not hasattr(value, a) and not _is_submodule(value, a)]
    assert missing == [], "\n".join(missing)


def _is_submodule(module, name: str) -> bool:
    if not hasattr(module, "__path__"):
        return False
    try:
        importlib.import_module(f"{module.__name__}.{name}")
        return True
    except ImportError:
        return False


def _ci_commands() -> list[str]:
    """The README's install and test commands, as ``.ci/run`` runs them (its lines after ``cd``)."""
    lines = (_REPO / ".ci" / "run").read_text().splitlines()
    return [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]


def test_the_readme_is_read_in_five_minutes():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    long = [n for n, line in enumerate(lines, 1)
            if len(line) > 120 and not line.startswith("|") and line not in _ci_commands()]
    assert long == [], f"README lines over 120 characters: {long}"


def test_the_readme_shows_the_commands_ci_runs():
    """Each of CI's two commands is alone in a bash block of the README, install first."""
    blocks = [block.strip() for _, block in _blocks(README, ("bash",))]
    commands = _ci_commands()
    assert len(commands) == 2 and all(command in blocks for command in commands), commands
    assert blocks.index(commands[0]) < blocks.index(commands[1])


# ---------------------------------------------------------------------------------------------------------- tutorial

def _marked_block(marker: str) -> str:
    text = README.read_text()
    position = text.find(marker)
    assert position >= 0, f"README.md has no {marker}"
    match = FENCE.search(text, position)
    assert match is not None, f"no fenced block after {marker}"
    return match.group(2)


def _line_pattern(expected: str) -> tuple[re.Pattern, list[float]]:
    """A regular expression for one expected line (``...``: any text; whitespace: any; decimal numbers captured) and
    the numbers it expects."""
    parts, numbers = [], []
    for piece in re.split(rf"(\.\.\.|\s+|{NUMBER})", expected.strip()):
        if not piece:
            continue
        if piece == "...":
            parts.append(".*?")
        elif piece.isspace():
            parts.append(r"\s+")
        elif re.fullmatch(NUMBER, piece):
            parts.append(f"({NUMBER})")
            numbers.append(float(piece))
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts)), numbers


def _line_matches(expected: str, actual: str) -> bool:
    pattern, wanted = _line_pattern(expected)
    match = pattern.fullmatch(actual.strip())
    return match is not None and all(math.isclose(float(got), want, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
                                     for got, want in zip(match.groups(), wanted))


def _lines_match(expected: list[str], actual: list[str]) -> bool:
    """``expected`` matches all of ``actual`` (a line ``...`` stands for any number of lines)."""
    @lru_cache(maxsize=None)
    def match(i: int, j: int) -> bool:
        if i == len(expected):
            return j == len(actual)
        if expected[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and _line_matches(expected[i], actual[j]) and match(i + 1, j + 1)
    return match(0, 0)


@pytest.mark.parametrize("expected, actual, matches", [
    (["a 0.5000 b"], ["a   0.50049 b"], True),
    (["a 0.5000 b"], ["a 0.502 b"], False),
    (["x ... y"], ["x 1 2 3 y"], True),
    (["...", "z"], ["a", "b", "z"], True),
    (["...", "z"], ["a", "b"], False),
    (["{\"a\": 3, \"s\": ...}"], ["{\"a\": 3, \"s\": 12.5}"], True),
    (["{\"a\": 3}"], ["{\"a\": 4}"], False),
])
def test_expected_output_matching(expected, actual, matches):
    assert _lines_match(expected, actual) is matches


def _clean_environment(home: Path) -> dict:
    """The user's environment as the tutorial expects it: the venv's bin first on the PATH, none of the variables it
    sets (or that a test session set), a home of its own (nothing outside the folder is read or written)."""
    prefixes = ("BRAINSCORE_PLUGINS_", "REGION_COMMITMENT_", "RESULTCACHING_", "BS_", "MT_", "HF_", "XDG_",
                "TORCH_HOME", "BRAINIO_", "BRAINSCORE_HOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


@pytest.mark.slow
def test_the_readme_tutorial_runs_as_shown(tmp_path, linked):
    script = _marked_block("<!-- tutorial -->")
    expected = _marked_block("<!-- expected -->").splitlines()
    (tmp_path / "home").mkdir()
    start = time.perf_counter()
    run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env=_clean_environment(tmp_path / "home"), timeout=1200)
    seconds = time.perf_counter() - start
    tail = "\n".join(run.stderr.splitlines()[-15:])
    assert run.returncode == 0, f"the tutorial failed (status {run.returncode}) after {seconds:.0f} s:\n{tail}"
    on_stderr = [line for line in expected if line.startswith(STDERR_PREFIXES)]
    on_stdout = [line for line in expected if not line.startswith(STDERR_PREFIXES)]
    assert _lines_match(on_stdout, run.stdout.splitlines()), \
        f"the tutorial's output differs from the README's:\n--- shown\n" + "\n".join(on_stdout) + \
        f"\n--- printed\n{run.stdout}\n--- stderr (end)\n{tail}"
    for line in on_stderr:
        assert any(_line_matches(line, actual) for actual in run.stderr.splitlines()), \
            f"not on standard error: {line}\n--- stderr (end)\n{tail}"
    print(f"tutorial: {seconds:.0f} s")
