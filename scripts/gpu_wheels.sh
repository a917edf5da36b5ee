#!/usr/bin/env bash
# Builds .whl/ here (git-ignored): what the lent GPU machine lacks (it has torch, transformers, accelerate
# and peft, and no internet), for its Python 3.12: trl, datasets, hydra-core, omegaconf and antlr4 (an
# sdist upstream, built here), dill 0.3.9 and multiprocess 0.70.17 (dill 0.4 breaks datasets' hashing
# there, see /work/shared/ENV-NOTES.md), tensorboardX, pytest, and this project as a wheel. About 3 MiB,
# from PyPI only; carried to the device by scripts/gpu_check.sh's caller (`carry: [".whl"]`).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
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
