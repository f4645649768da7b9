"""Sweeps: every model x benchmark into the results table, one process per model, failures recorded, resumable after
a kill, and the same rows on a local Ray instance (forged checkpoints, the bundled synthetic benchmarks)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from brainscore_plugins import forge
from brainscore_plugins.scale import results, scoring, sweep
from brainscore_plugins.errors import BenchmarkNotFoundError, ModelNotFoundError

GOOD = ["spvvs_resnet18_imagenet_full.ep1", "spvvs_resnet18_imagenet_full.ep2"]
BROKEN = "spvvs_resnet18_imagenet_full.ep3"  # its mirrored file is truncated
BENCHMARKS = ["bsp-synthetic.IT-pls", "bsp-synthetic-i2n"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for identifier in [*GOOD, "spvvs_resnet18_imagenet_full"]:
        forge.forge_into_mirror(identifier, root / "mirror")
    path = forge.forge_into_mirror(BROKEN, root / "mirror")
    path.write_bytes(path.read_bytes()[:4096])
    return root


@pytest.fixture
def environment(mirror, tmp_path, monkeypatch, linked, use_mirror):
    use_mirror(mirror / "mirror", tmp_path / "cache")
    monkeypatch.setenv("BS_INSTALL_DEPENDENCIES", "no")
    return tmp_path


def _pairs(table):
    return sorted(zip(table.identifier, table.benchmark))


@pytest.mark.slow
def test_local_sweep_records_failures_and_resumes_without_rescoring(environment):
    path = environment / "results.parquet"
    summary = sweep.sweep([*GOOD, BROKEN], BENCHMARKS, path, jobs=2, progress=False)
    table = results.read(path)
    assert (summary.models, summary.rows, summary.failed, summary.skipped) == (3, 6, 2, 0)
    assert _pairs(table) == sorted((i, b) for i in [*GOOD, BROKEN] for b in BENCHMARKS)
    broken = table[table.identifier == BROKEN]
    assert (broken.status == "failed").all() and broken.error_message.str.startswith("CheckpointInvalidError").all()
    good = table[table.identifier != BROKEN]
    assert (good.status == "ok").all() and good.score.between(0, 1).all() and (good.peak_rss_mb > 0).all()
    in_process, failure = scoring.score_row(GOOD[0], BENCHMARKS[0])  # the same pair, scored here
    assert failure is None
    assert good.set_index(["identifier", "benchmark"]).loc[(GOOD[0], BENCHMARKS[0]), "score"] == \
        pytest.approx(in_process["score"], abs=1e-6)

    again = sweep.sweep([*GOOD, BROKEN], BENCHMARKS, path, progress=False)
    assert (again.models, again.skipped) == (0, 6)
    assert results.read(path).equals(table)
    retried = sweep.sweep([*GOOD, BROKEN], BENCHMARKS, path, retry_failed=True, progress=False)
    assert (retried.models, retried.rows, retried.failed) == (1, 2, 2)
    assert _pairs(results.read(path)) == _pairs(table)


@pytest.mark.slow
def test_a_killed_sweep_loses_and_duplicates_nothing(environment, repo):
    path = environment / "results.parquet"
    command = [sys.executable, "-m", "brainscore_plugins", "sweep", *GOOD, "spvvs_resnet18_imagenet_full",
               "--benchmark", BENCHMARKS[0], "--results", str(path), "--quiet"]
    process = subprocess.Popen(command, cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(results.read(path)) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = results.read(path)
    assert 1 <= len(before) <= 2, process.stderr.read().decode()[-2000:]

    summary = sweep.sweep([*GOOD, "spvvs_resnet18_imagenet_full"], [BENCHMARKS[0]], path, progress=False)
    after = results.read(path)
    assert summary.skipped == len(before) and summary.models == 3 - len(before)
    assert len(after) == 3 and not after.duplicated(["identifier", "benchmark"]).any()
    assert (after.status == "ok").all()
    assert after.head(len(before)).equals(before)  # the rows of the killed run are kept as they were


def _terminal_signals():
    """SIGINT as a terminal's foreground process has it (a test run in the background inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_an_interrupted_sweep_says_so_on_one_line_and_keeps_its_rows(environment, repo):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it): status 130, one line, no traceback from
    the driver or a model's process, the finished rows kept, and the stopped model's temporary folder removed."""
    path, temporary = environment / "results.parquet", environment / "tmp"
    temporary.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "brainscore_plugins", "sweep", *GOOD,
                                "spvvs_resnet18_imagenet_full", "--benchmark", BENCHMARKS[0], "--results", str(path),
                                "--quiet"], cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, preexec_fn=_terminal_signals,
                               env={**os.environ, "TMPDIR": str(temporary)})
    deadline = time.monotonic() + 300
    while len(results.read(path)) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == ["error: interrupted"]
    table = results.read(path)
    assert 1 <= len(table) <= 2 and (table.status == "ok").all()
    assert not list(temporary.glob("brainscore-plugins-scoring-*"))  # the model stopped in flight cleaned up


@pytest.mark.slow
def test_ray_sweep_gives_the_local_rows(environment):
    path = environment / "ray.parquet"
    summary = sweep.sweep([GOOD[0], BROKEN], [BENCHMARKS[0]], path, engine="ray", workers=2, progress=False)
    table = results.read(path).set_index("identifier")
    assert (summary.models, summary.rows, summary.failed) == (2, 2, 1)
    assert table.loc[BROKEN, "error_message"].startswith("CheckpointInvalidError")
    local, _ = scoring.score_row(GOOD[0], BENCHMARKS[0])
    assert table.loc[GOOD[0], "score"] == pytest.approx(local["score"], abs=1e-6)


@pytest.mark.slow
def test_bad_input_is_refused_before_anything_runs(environment, repo):
    path = environment / "results.parquet"
    with pytest.raises(BenchmarkNotFoundError, match="bsp-synthetic.IT-plz"):
        sweep.sweep(GOOD, ["bsp-synthetic.IT-plz"], path, progress=False)
    with pytest.raises(ModelNotFoundError, match="matched no identifier"):
        sweep.sweep([], BENCHMARKS, path, progress=False)
    with pytest.raises(ValueError, match="unknown engine"):
        sweep.sweep(GOOD, BENCHMARKS, path, engine="slurm", progress=False)
    assert not path.exists()
    process = subprocess.run([sys.executable, "-m", "brainscore_plugins", "sweep", "no_such_model*", "--benchmark",
                              BENCHMARKS[0], "--results", str(path)], capture_output=True, text=True, cwd=repo,
                             timeout=300)
    assert process.returncode == 2 and process.stderr.startswith("error: No identifier matches 'no_such_model*'")
    assert "Traceback" not in process.stderr and not path.exists()


def test_forwarded_environment_keeps_only_what_workers_need():
    forwarded = sweep.forwarded_environment([("BRAINSCORE_PLUGINS_MIRROR", "/m"), ("HOME", "/root"),
                                             ("HF_HUB_OFFLINE", "1"), ("AWS_SECRET_ACCESS_KEY", "x")])
    assert forwarded == {"BRAINSCORE_PLUGINS_MIRROR": "/m", "HF_HUB_OFFLINE": "1"}


def test_brainscores_prints_during_scoring_go_to_stderr(monkeypatch, capsys):
    import brainscore_vision

    def chatty(identifier, benchmark):
        print("[pre-flight] [OK]  0.01 GB needed")
        raise RuntimeError("no data here")
    monkeypatch.setattr(brainscore_vision, "score", chatty)
    row, failure = scoring.score_row("spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls")
    captured = capsys.readouterr()
    assert captured.out == "" and "[pre-flight]" in captured.err
    assert row["status"] == "failed" and row["error_message"] == "RuntimeError: no data here"


def test_the_temporary_files_of_a_models_scoring_are_removed_after_it(monkeypatch):
    """Brain-Score writes a probe image into a new temporary folder once per process and never removes it: a sweep
    would leave one per model. Scoring makes its temporary files in a folder removed afterwards."""
    import tempfile

    import brainscore_vision
    from brainscore_vision.model_helpers.activations import core
    made = []

    def probing(identifier, benchmark):
        monkeypatch.setattr(core, "_probe_image_path", None)
        made.append(core._probe_image())  # Brain-Score's own: what every extractor's construction calls
        raise RuntimeError("scored nothing")
    monkeypatch.setattr(brainscore_vision, "score", probing)
    before = tempfile.gettempdir()
    rows = scoring.score_model(scoring.Task("spvvs_resnet18_imagenet_full", ("bsp-synthetic.IT-pls", "other")))
    assert [row["error_message"] for row in rows] == ["RuntimeError: scored nothing"] * 2
    assert len(made) == 2 and all(not os.path.exists(path) for path in made)
    assert all(os.path.dirname(os.path.dirname(path)) != before for path in made)  # not in the user's folder
    assert tempfile.gettempdir() == before


def test_a_message_with_undecodable_bytes_or_escapes_is_kept_as_valid_utf8(tmp_path):
    """A mirror path with a non-UTF-8 byte (a lone surrogate once decoded) or a terminal escape in an error: the row's
    message is escaped, so the table is written and the line prints as it is."""
    path = b"/mirror/\xff\x1b[31mred/ep1.pt".decode("utf-8", "surrogateescape")
    message = scoring.first_line(FileNotFoundError(f"no file {path}\nsecond line"))
    assert message == "FileNotFoundError: no file /mirror/\\udcff\\x1b[31mred/ep1.pt"
    message.encode("utf-8")  # valid
    rows = sweep.failed_rows(scoring.Task("spvvs_resnet18_imagenet_full", ("bsp-synthetic.IT-pls",)), message)
    table = results.append(rows, tmp_path / "results.parquet")
    assert table.error_message.tolist() == [message]


def test_duplicate_selections_are_scored_once(tmp_path, monkeypatch):
    planned = []

    def run(tasks, jobs, record):
        planned.extend(tasks)
        for task in tasks:
            record(sweep.failed_rows(task, "not scored in this test"))
    monkeypatch.setattr(sweep, "_run_local", run)
    summary = sweep.sweep(["spvvs_resnet18_imagenet_full", "spvvs_resnet18_imagenet_full",
                           "spvvs_resnet18_imagenet_full.ep100"],  # one checkpoint: its bare and epoch names
                          ["bsp-synthetic.IT-pls"] * 2, tmp_path / "results.parquet", progress=False)
    assert planned == [scoring.Task("spvvs_resnet18_imagenet_full", ("bsp-synthetic.IT-pls",))]
    assert summary.rows == 1 and len(results.read(tmp_path / "results.parquet")) == 1


WATCHED_CHILD = """
import sys, threading, time
from multiprocessing.connection import Connection
from brainscore_plugins.scale import sweep
threading.Thread(target=sweep.exit_when_closed, args=(Connection(int(sys.argv[1]), writable=False),),
                 daemon=True).start()
print("watching", flush=True)
time.sleep(120)
"""


def test_a_model_process_ends_when_its_driver_is_gone(repo):
    """The model process watches a pipe only the driver writes to: the driver's end closing (a SIGKILL closes it
    too) ends the model process, instead of leaving it running."""
    read_end, write_end = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", WATCHED_CHILD, str(read_end)], pass_fds=(read_end,), cwd=repo,
                             stdout=subprocess.PIPE, text=True)
    os.close(read_end)
    assert child.stdout.readline().strip() == "watching"
    time.sleep(0.5)
    assert child.poll() is None  # still running while the driver is there
    os.close(write_end)  # the driver is gone
    assert child.wait(timeout=20) == 1


@pytest.mark.slow
def test_a_sigkilled_driver_takes_its_model_processes_with_it(environment, repo):
    import psutil
    command = [sys.executable, "-m", "brainscore_plugins", "sweep", GOOD[0], "--benchmark", BENCHMARKS[0],
               "--results", str(environment / "results.parquet"), "--quiet"]
    process = subprocess.Popen(command, cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        driver, deadline = psutil.Process(process.pid), time.monotonic() + 120
        descendants = []
        while len(descendants) < 2 and time.monotonic() < deadline:  # the forkserver and the model's process
            time.sleep(0.2)
            descendants = driver.children(recursive=True)
        assert len(descendants) >= 2, "the model's process never started"
        process.kill()  # the driver alone, not its process group
        process.wait()
        gone, alive = psutil.wait_procs(descendants, timeout=5)  # scoring the model takes far longer
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_each_failed_pair_is_named_with_its_reason_and_the_status_says_so(tmp_path, monkeypatch, capsys):
    import json
    from brainscore_plugins import bridge, cli

    def run(tasks, jobs, record):
        for task in tasks:
            record(sweep.failed_rows(task, f"WeightsUnavailableError: no weights for {task.identifier}"))
    monkeypatch.setattr(sweep, "_run_local", run)
    monkeypatch.setattr(bridge, "is_linked", lambda: True)
    status = cli.main(["sweep", "spvvs_resnet18_imagenet_full", "--benchmark", "bsp-synthetic.IT-pls", "--results",
                       str(tmp_path / "results.parquet"), "--quiet"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # standard output: the JSON summary alone
    assert status == 1 and summary["failed"] == 1 and summary["failures"] == [
        {"identifier": "spvvs_resnet18_imagenet_full", "benchmark": "bsp-synthetic.IT-pls",
         "error": "WeightsUnavailableError: no weights for spvvs_resnet18_imagenet_full"}]
    assert ("failed: spvvs_resnet18_imagenet_full on bsp-synthetic.IT-pls: WeightsUnavailableError: no weights for "
            "spvvs_resnet18_imagenet_full") in captured.err
    monkeypatch.setattr(sweep, "_run_local", lambda tasks, jobs, record: None)
    assert cli.main(["sweep", "spvvs_resnet18_imagenet_full.ep1", "--benchmark", "bsp-synthetic.IT-pls",
                     "--results", str(tmp_path / "results.parquet"), "--quiet"]) == 0  # nothing failed


def test_gpu_placement_local_and_on_ray(monkeypatch):
    """Without a GPU here, the device logic: local jobs take the visible CUDA devices in turn (a job's process gets
    its own CUDA_VISIBLE_DEVICES), Ray tasks request --gpus."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert sweep.cuda_devices() == ["2", "5"]
    slots = sweep.device_slots(3, sweep.cuda_devices())
    assert [slots.get() for _ in range(3)] == ["2", "5", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sweep.cuda_devices() == [] and sweep.device_slots(2, []).get() is None  # CPU only
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    import torch
    assert sweep.cuda_devices() == [str(i) for i in range(torch.cuda.device_count())]
    assert sweep.ray_options(4, 16, 1) == {"num_cpus": 4, "max_retries": 0, "memory": 16 * 2 ** 30, "num_gpus": 1}
    assert "num_gpus" not in sweep.ray_options(1, None, 0)


def test_each_local_model_process_gets_its_device(monkeypatch):
    """_in_child hands the child its slot's device and returns the slot when it is done."""
    started = []

    class FakeProcess:
        def __init__(self, target, args, name):
            started.append(args[2].get("CUDA_VISIBLE_DEVICES"))
            self.exitcode = 0

        def start(self):
            pass

        def join(self):
            pass

    class Context:
        Process = FakeProcess

        @staticmethod
        def Pipe(duplex):
            import multiprocessing
            receive, send = multiprocessing.Pipe(duplex=False)
            return receive, send

    monkeypatch.setattr(sweep, "failed_rows", lambda task, message: ["died"])
    slots = sweep.device_slots(2, ["0", "1"])
    task = scoring.Task("spvvs_resnet18_imagenet_full", ("b",))
    assert sweep._in_child(Context, task, set(), slots) == ["died"]  # no answer: its pipe closed
    assert started == ["0"] and slots.qsize() == 2  # the slot is back
