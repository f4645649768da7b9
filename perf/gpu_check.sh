#!/usr/bin/env bash
# The GPU path where a CUDA device is: the equivalence tests against Brain-Score's own plugin, the fast-activations and
# pixel-cache tests, then perf/extraction_speed.py; under 10 minutes. Usage: bash perf/gpu_check.sh [python]
# (default: .venv/bin/python). The last line is extraction_speed.py's JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
"$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here')"
"$python" -c "import torch; print('device:', torch.cuda.get_device_name(0))" >&2
timeout 420 "$python" -m pytest -q -p no:cacheprovider tests/test_brainscore_equivalence.py \
    tests/brainscore_plugins/test_fast_activations.py tests/brainscore_plugins/test_pixel_cache.py >&2
timeout 150 "$python" perf/extraction_speed.py --images 128 --rounds 2
