#!/usr/bin/env bash
# The GPU check on a lent GPU machine (torch, transformers, accelerate, peft installed; no internet):
# installs the carried wheels (.whl/, built here by scripts/gpu_wheels.sh), runs scripts/gpu_check.py
# and, where vLLM imports, the gpu-marked tests. Results: results/gpu_check.md, and its whole output in
# /tmp/gpu_check.log; both copied to $OUT when set.
#   device run: carry [".whl"]; command: bash scripts/gpu_check.sh; timeout_s 600
# Time budget (a session's device time is 15 minutes, machine start and any rerun included):
#   wheels ~15 s;
#   gpu_check.py <= 420 s: its parts start only while they fit in --budget 390 s (estimates per part in
#     the script; on the H100 of 2026-11-28 model building and the dpo, simpo, lora and batching parts
#     took ~3 minutes; the cluster=gpus part adds ~1.5, the vLLM part ~2.5 where vLLM is installed);
#   the gpu-marked tests <= 90 s, run only where vLLM imports (without it they all skip).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
mkdir -p results
log=/tmp/gpu_check.log
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
rc=0
timeout 420 python3 scripts/gpu_check.py --out results/gpu_check.md --budget 390 > "$log" 2>&1 || rc=$?
tail -80 "$log"
save() { if [ -n "${OUT:-}" ]; then cp results/gpu_check.md "$log" "$OUT/" 2>/dev/null; fi; }
save
if python3 -c "import vllm" 2>/dev/null; then
    # Only the files with gpu-marked tests: collecting every test file from the source tree would import
    # selfplay from there, where its conf/ package is not (the installed wheel has it).
    timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu $(grep -rl "mark.gpu" tests) 2>&1 | tail -15 || rc=$?
else
    echo "vLLM does not import here: the gpu-marked tests (all need vLLM) are not run"
fi
save
exit $rc
