"""Fast, offline layer commitment for V1, V2, V4, IT with Brain-Score's semantics (see :func:`commit`)."""
from .selection import REGIONS, CommitmentResult, commit  # noqa: F401
from .layers import candidate_layers  # noqa: F401
from .targets import DEFAULT_BENCHMARKS, RegionTarget, from_assembly, from_benchmark, from_files  # noqa: F401
