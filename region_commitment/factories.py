"""Which target a Brain-Score benchmark makes: :data:`TARGET_FACTORIES`, tried in order by :func:`load_target`.

A new kind of target read from a benchmark (an fMRI encoding target, ...) is one more entry here.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from . import brainscore_internals
from .behavior import from_behavioral_benchmark
from .errors import InvalidTargetError
from .protocol import Target
from .targets import from_benchmark


class TargetFactory(NamedTuple):
    kind: str                              # the benchmarks it reads, in words
    accepts: Callable[[object], bool]      # benchmark -> whether it is of that kind
    build: Callable[[object, str], Target]  # (benchmark, region key) -> target


TARGET_FACTORIES = (  # the first that accepts a benchmark makes its target
    TargetFactory("cross-validated PLS NeuralBenchmark", brainscore_internals.is_pls_benchmark,
                  lambda benchmark, region: from_benchmark(benchmark, region=region)),
    TargetFactory("probabilities benchmark with fitting stimuli (Rajalingham2018-style)",
                  brainscore_internals.is_probabilities_benchmark,
                  lambda benchmark, region: from_behavioral_benchmark(benchmark)),
)


def load_target(region: str, benchmark) -> Target:
    """The target of ``region`` (a key of ``commit``'s ``benchmarks``) from a benchmark identifier or object, by the
    first of :data:`TARGET_FACTORIES` that accepts the benchmark; a :class:`Target` is returned as it is.

    Raises:
        BenchmarkUnavailableError: an identifier that cannot be loaded (no plugin, data not cached nor reachable).
        InvalidTargetError: a benchmark of no kind in :data:`TARGET_FACTORIES`, or whose data cannot make a target.
    """
    if isinstance(benchmark, Target):
        return benchmark
    if isinstance(benchmark, str):
        benchmark = brainscore_internals.load_benchmark(benchmark)
    for factory in TARGET_FACTORIES:
        if factory.accepts(benchmark):
            return factory.build(benchmark, region)
    raise InvalidTargetError(f"{getattr(benchmark, 'identifier', benchmark)} ({region}): a target is made only from "
                             f"a {' or a '.join(factory.kind for factory in TARGET_FACTORIES)}")
