"""The command line people trust: one-line errors with consistent exit codes, help everywhere, no torch for --help."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from brainscore_plugins import cli


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "brainscore_plugins", *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.mark.slow
def test_help_and_version_without_torch(repo):
    code = ("import sys, contextlib, io\nfrom brainscore_plugins import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        cli.main(['--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'brainscore_vision' in sys.modules, 'BRAINSCORE_PLUGINS_DATA' in "
            "out.getvalue())")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=120)
    assert process.stdout.split() == ["False", "False", "True"], process.stderr
    version = _run("--version")
    assert version.returncode == 0 and version.stdout.startswith("brainscore-plugins ")


def test_every_command_has_a_description_and_every_option_a_help():
    parser = cli.build_parser()
    [commands] = [a for a in parser._actions if a.dest == "command"]
    assert set(commands.choices) == {"list", "info", "fetch", "forge", "link", "unlink", "generate", "commit", "score",
                                     "package", "demo", "sweep", "results", "scaling", "report", "noise-ceiling"}
    for name, sub in commands.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}"


@pytest.mark.slow
def test_list_into_a_closed_pipe_is_quiet(repo):
    process = subprocess.run(f"{sys.executable} -m brainscore_plugins list --checkpoints | head -1", shell=True,
                             capture_output=True, text=True, cwd=repo, timeout=120)
    assert process.stdout.count("\n") == 1 and process.stderr == ""


@pytest.mark.slow
def test_list_filters_and_json():
    listed = _run("list", "spvvs_resnet1*_imagenet_full", "--arch", "resnet18").stdout.split()
    assert listed == ["spvvs_resnet18_imagenet_full"]
    import json
    rows = json.loads(_run("list", "--family", "hlvit", "--dataset", "humanlike-video-1.0", "--arch", "vits14",
                           "--json").stdout)
    assert [r["identifier"] for r in rows] == ["hlvit_vits14_1.0_1", "hlvit_vits14_1.0_1-finetuned"]


@pytest.mark.slow
@pytest.mark.parametrize("args, status, message", [
    (["info", "spvvs_nope"], 2, "Unknown model identifier 'spvvs_nope'"),
    (["commit", "hlvit_vits14_1.0_1", "--assembly", "IT=only.nc"], 2, "needs two files"),
    (["commit", "hlvit_vits14_1.0_1", "--assembly", "IT=missing.nc,missing.csv"], 2, "missing"),
    (["list", "--family", "nope"], 2, "invalid choice"),
])
def test_usage_errors_are_one_line_with_status_2(args, status, message):
    process = _run(*args)
    assert process.returncode == status and message in process.stderr, process.stderr[-2000:]
    assert process.stderr.startswith("error: ") and len(process.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_runtime_failures_are_one_line_with_status_1(tmp_path):
    env = {"BRAINSCORE_PLUGINS_MIRROR": "", "BRAINSCORE_PLUGINS_CACHE": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin"}
    process = _run("fetch", "spvvs_resnet18_imagenet_full", env=env)
    assert process.returncode == 1 and "BRAINSCORE_PLUGINS_MIRROR" in process.stderr
    assert process.stderr.startswith("error: ") and len(process.stderr.strip().splitlines()) == 1


def test_list_and_info_spell_an_identifier_as_registered(capsys):
    assert cli.main(["list", "--json", "resnet18_imagenet_full"]) == 0
    import json
    [row] = json.loads(capsys.readouterr().out)
    assert row["identifier"] == "spvvs_resnet18_imagenet_full" and row["checkpoint"].endswith(".ep100")
    assert cli.main(["info", "resnet18_imagenet_full.ep3"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["identifier"] == "spvvs_resnet18_imagenet_full.ep3" == info["checkpoint"]


def test_list_of_a_glob_matching_nothing_is_status_2_with_close_matches(capsys):
    assert cli.main(["list", "resnt18_imagenet_full*"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Did you mean 'resnet18_imagenet_full*'?" in captured.err
    assert cli.main(["list", "resnet18_imagenet_full*"]) == 0
    assert capsys.readouterr().out.split()[0] == "spvvs_resnet18_imagenet_full"


def test_forge_writes_distinct_loadable_checkpoints(tmp_path, use_mirror, capsys):
    from brainscore_plugins import create_model
    mirror = use_mirror(tmp_path / "mirror", tmp_path / "cache")
    assert cli.main(["forge", "spvvs_alexnet_imagenet_full_seed-0.ep1", "spvvs_alexnet_imagenet_full_seed-0.ep2"]) == 0
    paths = capsys.readouterr().out.split()
    assert paths == [str(mirror / "alexnet_imagenet_full_seed-0" / f"ep{n}.pt") for n in (1, 2)]
    first, second = (create_model(f"spvvs_alexnet_imagenet_full_seed-0.ep{n}") for n in (1, 2))
    assert not first.features[0].weight.equal(second.features[0].weight)  # per-identifier seeds


def test_forge_without_a_mirror_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("BRAINSCORE_PLUGINS_MIRROR", raising=False)
    assert cli.main(["forge", "spvvs_alexnet_imagenet_full_seed-0"]) == 2
    assert "pass --mirror DIR or set $BRAINSCORE_PLUGINS_MIRROR" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["score", "resnet18_imagenet_full", "bsp-synthetic.IT-pls"],
                                     ["sweep", "resnet18_imagenet_full", "--benchmark", "bsp-synthetic.IT-pls"]])
def test_scoring_without_the_links_names_the_link_command(monkeypatch, capsys, command):
    from brainscore_plugins import bridge
    monkeypatch.setattr(bridge, "is_linked", lambda: False)
    assert cli.main(command) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: our plugins are not linked") and "run `brainscore-plugins link`" in error
    assert len(error.strip().splitlines()) == 1


def test_the_console_command_ends_at_once_with_mains_status(monkeypatch, repo):
    """``run`` skips the interpreter's teardown, where a native library's thread aborted a finished command (134)."""
    import configparser
    import os
    entry = configparser.ConfigParser()
    entry.read(repo / "setup.cfg")
    assert "brainscore_plugins.cli:run" in entry["options.entry_points"]["console_scripts"]
    ended = []
    monkeypatch.setattr(cli, "main", lambda: 2)
    monkeypatch.setattr(os, "_exit", lambda status: ended.append(status))
    cli.run()
    assert ended == [2]


@pytest.mark.slow
def test_an_error_after_importing_brainscore_never_aborts(tmp_path, repo):
    import pandas as pd
    newer = tmp_path / "newer.parquet"
    pd.DataFrame({"identifier": ["a"], "benchmark": ["b"], "score": [0.5], "schema_version": [99]}).to_parquet(newer)
    statuses = [_run("score", "spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls", "--results", str(newer),
                     env={**os.environ, "BS_INSTALL_DEPENDENCIES": "no"}).returncode for _ in range(8)]
    assert statuses == [2] * 8  # was 134 in about a quarter of the runs


def test_forging_a_model_or_its_latest_checkpoint_writes_the_same_file(tmp_path, capsys):
    from brainscore_plugins import catalog
    latest = catalog.resolve("spvvs_alexnet_imagenet_full_seed-0").identifier
    written = []
    for name, mirror in (("spvvs_alexnet_imagenet_full_seed-0", "a"), (latest, "b")):
        assert cli.main(["forge", name, "--mirror", str(tmp_path / mirror)]) == 0
        written.append(Path(capsys.readouterr().out.strip()).read_bytes())
    assert written[0] == written[1]


def test_a_quiet_sweep_silences_the_model_processes_bars(monkeypatch, capsys):
    from brainscore_plugins import bridge
    from brainscore_plugins.scale import sweep
    seen = []
    monkeypatch.setattr(bridge, "is_linked", lambda: True)
    monkeypatch.setattr(sweep, "sweep", lambda *a, **k: seen.append((os.environ.get("TQDM_DISABLE"), k["progress"]))
                        or sweep.Summary(0, 0, 0, 0, 1.0))
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert cli.main(["sweep", "resnet18_imagenet_full", "--benchmark", "bsp-synthetic.IT-pls", "--quiet"]) == 0
    monkeypatch.delenv("TQDM_DISABLE")
    assert cli.main(["sweep", "resnet18_imagenet_full", "--benchmark", "bsp-synthetic.IT-pls"]) == 0
    assert seen == [("1", False), (None, True)]
    assert capsys.readouterr().out.count('"models": 0') == 2
