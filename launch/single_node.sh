#!/bin/bash
# selfplay on one machine with several GPUs: one vLLM engine per tensor-parallel group of the visible
# GPUs for generation, all GPUs for training (one rank process per GPU), every stage in its own process.
# Resources only; hyperparameters live in conf/experiment/. From the repository root:
#   launch/single_node.sh experiment=llama3_8b_simpo generate.tensor_parallel_size=2
# Rerun the same command after a crash to resume; add loop.dry_run=true to see every command first.
set -euo pipefail
source "${SELFPLAY_VENV:-$PWD/.venv}/bin/activate"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$PWD/.torch_extensions}"
exec python -m selfplay.run cluster=gpus "$@"
