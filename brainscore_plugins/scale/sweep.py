"""Sweeps: many models x benchmarks scored into one results table, resumable, locally or on a Ray cluster.

The unit of work is a model (:class:`.scoring.Task`: one identifier and its benchmarks still to score), run in a
process of its own, so memory is bounded by the largest model and a crash costs one model. Only this driver writes
the table (:func:`.results.append`, atomically, after each model), so a sweep killed midway keeps every finished
model and a rerun skips it: pairs already in the table are not scored again (failed ones with ``retry_failed``).

Engines: ``local`` (default): ``jobs`` models at a time, each in a fresh process forked from a server that imported
torch and Brain-Score once (``multiprocessing``'s forkserver), with the driver's environment. ``ray``: one Ray task
per model with its resource request (``cpus``, ``memory_gb``) on the cluster at ``address`` (default: a local
instance with ``workers`` CPUs), the driver's brainscore-plugins / Brain-Score variables forwarded to the workers.
"""
from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import queue
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from . import results, scoring
from .. import settings
from ..errors import ModelNotFoundError
from .scoring import Task, check_benchmarks, failed_rows, first_line, score_model

_logger = logging.getLogger(__name__)
ENGINES = ("local", "ray")
# prefixes of the environment variables a Ray worker needs from the driver (paths, offline switches, caches)
FORWARDED_PREFIXES = ("BRAINSCORE_PLUGINS_", "REGION_COMMITMENT_", "BS_", "RESULTCACHING_", "MT_", "HF_",
                      "TORCH_HOME", "XDG_", "OMP_NUM_THREADS")


@dataclass
class Summary:
    """What a sweep did: models and rows written, failures, wall time."""
    models: int
    rows: int
    failed: int
    skipped: int
    seconds: float
    failures: list[dict] = field(default_factory=list)  # {identifier, benchmark, error}: each failed pair's reason

    @property
    def models_per_hour(self) -> float:
        return self.models / self.seconds * 3600 if self.seconds else math.nan


def plan(identifiers: list[str], benchmarks: list[str], table, retry_failed: bool = False) -> list[Task]:
    """One task per model with the benchmarks not yet in ``table`` in the configuration it is scored with now
    (:func:`.scoring.configuration`: a float32 row does not count for a bfloat16 sweep), in the given order; models
    with none left drop out."""
    done = results.scored(table, retry_failed)
    tasks = []
    for identifier in identifiers:
        now = scoring.configuration(identifier)
        left = (b for b in benchmarks if results.key({"identifier": identifier, "benchmark": b, **now}) not in done)
        tasks.append(Task(identifier, tuple(left)))
    return [task for task in tasks if task.benchmarks]


def sweep(identifiers: list[str], benchmarks: list[str], path: str | Path | None = None, *, engine: str = "local",
          jobs: int = 1, address: str | None = None, workers: int | None = None, cpus: float = 1,
          memory_gb: float | None = None, gpus: float = 0, retry_failed: bool = False,
          progress: bool = True) -> Summary:
    """Score every identifier on every benchmark into the results table at ``path`` (default
    :func:`.results.default_path`), skipping pairs already there. GPUs: a Ray task requests ``gpus`` (Ray gives it
    those devices); local processes share the visible CUDA devices, one each (:func:`device_slots`).

    Raises:
        ModelNotFoundError: no identifiers. BenchmarkNotFoundError: an unknown benchmark (both before anything runs).
        ResultsTableError: the table cannot be read.
        ValueError: an unknown engine, extractor or precision, or ``jobs`` / ``workers`` / ``cpus`` not positive.
    """
    if not identifiers:
        raise ModelNotFoundError("nothing to sweep: the selection matched no identifier (see `brainscore-plugins "
                                 "list` with the same patterns)")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if min(jobs, workers or 1, cpus) <= 0 or gpus < 0:
        raise ValueError("--jobs, --workers and --cpus must be positive, --gpus not negative")
    identifiers, benchmarks = _one_name_per_checkpoint(identifiers), list(dict.fromkeys(benchmarks))
    settings.extractor(), settings.precision()  # a value every model would fail on fails the sweep now
    check_benchmarks(benchmarks)
    path = results.check_writable(path)
    tasks = plan(identifiers, benchmarks, results.read(path), retry_failed)
    skipped = len(identifiers) * len(benchmarks) - sum(len(task.benchmarks) for task in tasks)
    summary = Summary(models=0, rows=0, failed=0, skipped=skipped, seconds=0.0)
    if not tasks:
        return summary
    from tqdm.auto import tqdm

    start = time.perf_counter()
    with tqdm(total=len(tasks), unit="model", desc="sweep", disable=not progress) as bar:
        def record(rows: list[dict]) -> None:
            results.append(rows, path)
            summary.models += 1
            summary.rows += len(rows)
            for row in rows:
                if row["status"] == results.FAILED:
                    summary.failures.append({"identifier": row["identifier"], "benchmark": row["benchmark"],
                                             "error": row["error_message"]})
                    bar.write(f"failed: {row['identifier']} on {row['benchmark']}: {row['error_message']}",
                              file=sys.stderr)
            summary.failed = len(summary.failures)
            bar.set_postfix(failed=summary.failed)
            bar.update()

        if engine == "local":
            _run_local(tasks, jobs, record)
        else:
            _run_ray(tasks, address, workers or jobs, ray_options(cpus, memory_gb, gpus), record)
    summary.seconds = time.perf_counter() - start
    return summary


def _one_name_per_checkpoint(identifiers: list[str]) -> list[str]:
    """``identifiers`` without repeats, a model's bare name and its latest epoch's name counting as one (the first
    given is kept): each checkpoint is scored once."""
    from .. import catalog, families
    kept = {}
    for identifier in identifiers:
        base = identifier.removesuffix(families.FMRI_SUFFIX)
        entry = catalog.lookup(base)
        kept.setdefault((entry.identifier if entry else base) + identifier[len(base):], identifier)
    return list(kept.values())


def _run_local(tasks: list[Task], jobs: int, record: Callable[[list[dict]], None]) -> None:
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "brainscore_vision", "brainscore_plugins.scale.scoring"])
    children: set = set()
    slots = device_slots(jobs, cuda_devices())
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(_in_child, context, task, children, slots) for task in tasks]
        try:
            for future in concurrent.futures.as_completed(futures):
                record(future.result())
        except BaseException:  # interrupted: stop the running models, write nothing more
            for future in futures:
                future.cancel()
            for child in list(children):
                child.terminate()
            raise


def cuda_devices() -> list[str]:
    """The CUDA devices this driver may use: ``$CUDA_VISIBLE_DEVICES`` when set, else every one torch sees."""
    visible = settings.visible_cuda_devices()
    if visible is not None:
        return visible
    import torch
    return [str(i) for i in range(torch.cuda.device_count())]


def device_slots(jobs: int, devices: list[str]) -> queue.Queue:
    """One slot per local job: the devices in turn (``jobs`` above their number share them), or ``None`` (CPU)."""
    slots = queue.Queue()
    for job in range(jobs):
        slots.put(devices[job % len(devices)] if devices else None)
    return slots


def ray_options(cpus: float, memory_gb: float | None, gpus: float) -> dict:
    """The resource request of one model's Ray task (``num_gpus``: Ray places it on a node with them and sets its
    ``CUDA_VISIBLE_DEVICES``)."""
    options = {"num_cpus": cpus, "max_retries": 0}
    if memory_gb:
        options["memory"] = int(memory_gb * 2 ** 30)
    if gpus:
        options["num_gpus"] = gpus
    return options


def _in_child(context, task: Task, children: set, slots: queue.Queue) -> list[dict]:
    """``score_model(task)`` in a fresh process with the driver's environment and a device slot of its own (its
    ``CUDA_VISIBLE_DEVICES``); failed rows if it dies."""
    receive, send = context.Pipe(duplex=False)
    alive, alive_kept = context.Pipe(duplex=False)  # this driver keeps the only writing end, and never writes
    device = slots.get()
    environ = dict(os.environ) if device is None else {**os.environ, "CUDA_VISIBLE_DEVICES": device}
    child = context.Process(target=_child_main, args=(task, send, environ, alive), name=f"score {task.identifier}")
    try:
        child.start()
    except BaseException:
        slots.put(device)
        raise
    children.add(child)
    send.close()
    alive.close()
    try:
        rows = receive.recv()
    except EOFError:
        rows = None
    child.join()
    alive_kept.close()
    children.discard(child)
    slots.put(device)
    if rows is None:
        reason = "killed: out of memory?" if child.exitcode == -9 else "see its log"
        return failed_rows(task, f"the process scoring {task.identifier} exited with status {child.exitcode} "
                                 f"before it answered ({reason})")
    return rows


def _child_main(task: Task, send, environ: dict, alive) -> None:
    import signal
    import threading
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the children (SIGTERM)
    signal.signal(signal.SIGTERM, _terminated)
    threading.Thread(target=exit_when_closed, args=(alive,), daemon=True, name="driver watchdog").start()
    os.environ.clear()
    os.environ.update(environ)  # the forkserver's environment is the one it started with, not the driver's now
    send.send(score_model(task))
    send.close()


def _terminated(signal_number, _frame) -> None:
    """Stopped by the driver: exit through the interpreter, so that what is being written is removed (the scoring's
    temporary folder, a half-written cache file) instead of left behind."""
    raise SystemExit(128 + signal_number)


def exit_when_closed(alive) -> None:
    """End this process once the sweep's driver is gone, killed included: ``alive`` is the reading end of a pipe
    whose only writing end the driver holds and never writes to, so reading it ends (EOF) only when the driver
    exits."""
    try:
        alive.recv()
    except (EOFError, OSError):
        pass
    os._exit(1)


def forwarded_environment(environ: Iterable[tuple[str, str]] | None = None) -> dict[str, str]:
    """The driver's variables a Ray worker needs (:data:`FORWARDED_PREFIXES`)."""
    items = os.environ.items() if environ is None else environ
    return {k: v for k, v in items if k.startswith(FORWARDED_PREFIXES)}


def _run_ray(tasks: list[Task], address: str | None, workers: int, options: dict,
             record: Callable[[list[dict]], None]) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'brainscore-plugins[ray]'") from None
    ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
             runtime_env={"env_vars": forwarded_environment()}, log_to_driver=False,
             logging_level=logging.WARNING, configure_logging=True)
    try:
        remote = ray.remote(score_model).options(**options)
        pending = {remote.remote(task): task for task in tasks}
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready)
            try:
                rows = ray.get(ready)
            except ray.exceptions.RayError as error:
                rows = failed_rows(task, f"the Ray task scoring {task.identifier} failed: {first_line(error)}")
            record(rows)
    finally:
        ray.shutdown()

