#!/usr/bin/env bash
# The performance suite at CIFAR-10 scale on one GPU, one invocation, under 5 minutes:
# random images of CIFAR-10's shape (no download), IPC 10, batch_real 256, 5 evaluation
# networks. Writes bench/results/suite_gpu.{md,json}; commit them with the machine's name.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -m bench --dataset random_cifar10 --ipc 10 --batch-real 256 --iterations 20 --warmup 3 \
    --eval-epochs 300 --eval-models 5 --tag gpu "$@"
