#!/usr/bin/env bash
# The GPU path where a CUDA device is: the equivalence tests against Brain-Score's own plugin, the fast-activations
# (pinned memory, precision) and pixel-cache tests, perf/extraction_speed.py, then perf/sweep_cost.py's forward passes
# measured on the device (it replaces the GPU-hours estimate); under 10 minutes. Usage: bash perf/gpu_check.sh
# [python] (default: .venv/bin/python). The last two lines are extraction_speed.py's and sweep_cost.py's JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
"$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here')"
"$python" -c "import torch; print('device:', torch.cuda.get_device_name(0))" >&2
timeout 300 "$python" -m pytest -q -p no:cacheprovider tests/test_brainscore_equivalence.py \
    tests/brainscore_plugins/test_fast_activations.py tests/brainscore_plugins/test_pixel_cache.py >&2
timeout 150 "$python" perf/extraction_speed.py --images 128 --rounds 2
timeout 120 "$python" perf/sweep_cost.py --device cuda --batch 64
