#!/usr/bin/env bash
# The GPU check on a lent GPU machine (torch, transformers, accelerate, peft installed; no internet):
# installs the carried wheels (.whl/, built here by scripts/gpu_wheels.sh), runs scripts/gpu_check.py
# and the gpu-marked tests, all within 9 minutes. Results: results/gpu_check.md (and $OUT when set).
#   device run: carry .whl; command: bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
rc=0
timeout 420 python3 scripts/gpu_check.py --out results/gpu_check.md || rc=$?
if [ -n "${OUT:-}" ]; then cp results/gpu_check.md "$OUT/" 2>/dev/null; fi
# Only the files with gpu-marked tests: collecting every test file from the source tree would import
# selfplay from there, where its conf/ package is not (the installed wheel has it).
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu $(grep -rl "mark.gpu" tests) 2>&1 | tail -15 || rc=$?
if [ -n "${OUT:-}" ]; then cp results/gpu_check.md "$OUT/" 2>/dev/null; fi
exit $rc
