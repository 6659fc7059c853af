#!/usr/bin/env bash
# GPU smoke test: does the GPU path work on this machine, and how fast?  (docs/distributed.md)
#
#   make install GPU=1 && scripts/gpu_smoke.sh
#
# Each local GPU trains resnet_v1_50 a few steps in float32 and float16, `horovodrun -np <gpus>`
# trains over NCCL, GPU 0 tries --xla, and one dist_arcface step runs through PLSC's Entry API;
# then a table of images/s.  On a machine without a GPU it says so and exits 0.
# PY picks the interpreter (default: .venv-gpu's, else .venv's); settings: scripts/gpu_smoke.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
if [ -z "${PY:-}" ]; then
  for candidate in .venv-gpu/bin/python .venv/bin/python; do
    if [ -x "$candidate" ]; then PY=$candidate; break; fi
  done
fi
PY=${PY:-python3}
if [ -z "${SMOKE_CPU_WORKERS:-}" ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_smoke: no GPU here (nvidia-smi $(command -v nvidia-smi >/dev/null 2>&1 \
      && echo 'lists none' || echo 'not found': no NVIDIA driver)); nothing to run"
    exit 0
  fi
  nvidia-smi -L
  built=$("$PY" -c 'import tensorflow as tf; print(tf.test.is_built_with_cuda())')
  if [ "$built" != "True" ]; then
    echo "gpu_smoke: $PY has a TensorFlow built without CUDA (the CPU wheel): run" \
         "'make install GPU=1' and then 'PY=.venv-gpu/bin/python $0'" >&2
    exit 2
  fi
  if ! PATH="$(dirname "$PY"):$PATH" horovodrun --check-build | grep -q '\[X\] NCCL'; then
    echo "gpu_smoke: the Horovod of $PY was built without NCCL: run 'make install GPU=1'" >&2
    exit 2
  fi
fi
exec "$PY" scripts/gpu_smoke.py
