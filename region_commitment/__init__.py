"""Fast, offline layer commitment for V1, V2, V4, IT and the behavioral readout with Brain-Score's semantics
(see :func:`commit`)."""
from .selection import BEHAVIOR, REGIONS, CommitmentResult, commit  # noqa: F401
from .errors import (BenchmarkUnavailableError, CommitmentError, InvalidTargetError,  # noqa: F401
                     RegionCommitmentError)
from .factories import TARGET_FACTORIES, load_target  # noqa: F401
from .scoring import LayerScore, LayerView, Target  # noqa: F401
from .layers import candidate_layers  # noqa: F401
from .targets import (DEFAULT_BENCHMARKS, RegionTarget, from_assembly, from_benchmark, from_files,  # noqa: F401
                      stimulus_set_from_csv)
from .behavior import (BehaviorTarget, from_behavioral_assembly, from_behavioral_benchmark,  # noqa: F401
                       from_behavioral_files)
