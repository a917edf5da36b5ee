#!/usr/bin/env bash
# Builds .whl/ here (ignored by git): what the GPU machine lacks, for its Python 3.12, plus this
# project as a wheel. About 3 MiB; carried to the device by scripts/gpu_check.sh's caller.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
get() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$@"
}
get "trl==$(python3 -c 'import trl; print(trl.__version__)')" \
    "datasets==$(python3 -c 'import datasets; print(datasets.__version__)')" \
    "hydra-core==$(python3 -c 'import hydra; print(hydra.__version__)')" \
    "omegaconf==$(python3 -c 'import omegaconf; print(omegaconf.__version__)')" \
    dill==0.3.9 multiprocess==0.70.17 tensorboardX pytest pluggy iniconfig
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # sdist only upstream
python3 -m pip wheel -q --no-deps -w .whl .                               # selfplay itself
du -sh .whl && ls .whl
