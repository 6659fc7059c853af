#!/usr/bin/env bash
# The GPU environment: TensorFlow 2.15.1 with its CUDA 12 wheels and Horovod 0.28.1 built with
# HOROVOD_GPU_OPERATIONS=NCCL.  Called by `make install GPU=1` and `make check-gpu-build`.
#
#   scripts/build_horovod_gpu.sh [VENV_DIR]        (default .venv-gpu; the CPU .venv is not touched)
#
# It compiles without a GPU.  What it takes from where (docs/distributed.md, "GPUs"):
#   - TensorFlow, cuDNN, cuBLAS, the CUDA 12.2 runtime and NCCL 2.16.5: PyPI's nvidia-*-cu12 wheels,
#     exactly the versions TensorFlow 2.15.1's `and-cuda` extra pins (checked below against the
#     installed wheel's metadata).  Horovod links that NCCL.
#   - The CUDA compiler for Horovod's three CUDA kernels (horovod/common/ops/cuda/cuda_kernels.cu):
#     PyPI has no CUDA 12 nvcc: every nvidia-cuda-nvcc-cu12 wheel (12.0.76 ... 12.9.86) holds ptxas,
#     libnvvm, libdevice and headers, but no nvcc, cicc, cudafe++ or fatbinary.  So:
#       FASTNN_CUDA_HOME=/path/to/cuda-12.x   a CUDA 12 toolkit (what GPU machines and NVIDIA's
#                                             CUDA 12 images have): kernels for V100 (sm_70) and up;
#       unset                                 PyPI's CUDA 13.0 compiler wheels (nvidia-cuda-nvcc,
#                                             -crt, -nvvm, -runtime, -cccl 13.0), installed with
#                                             --target into VENV/cuda-build, never the system's.
#                                             CUDA 13 builds sm_75 (Turing) and newer only, and its
#                                             runtime (linked statically into Horovod) needs an
#                                             R580+ driver.
#     Either way the compiler is picked explicitly (PATH, HOROVOD_CUDA_HOME, CUDACXX, CUDA_PATH,
#     CUDAToolkit_ROOT), and the script proves from CMake's log which nvcc and NCCL it used.
# Environment: PYTHON (python3.11), FASTNN_CUDA_HOME, HOROVOD_BUILD_CUDA_CC_LIST, MAKEFLAGS (-j2).
set -euo pipefail

# All in one function: bash reads it whole before running it, so editing this file during a
# (half-hour) build cannot change what the running build does next.
main() {
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${1:-.venv-gpu}
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PYTHON=${PYTHON:-python3.11}
PY="$VENV/bin/python"
BUILD="$VENV/cuda-build"
LOG="$VENV/horovod-gpu-build.log"
CUDA13_WHEELS="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85"
PIPLOG="$VENV/pip-install.log"
say() { echo "build_horovod_gpu: $*"; }
die() { echo "build_horovod_gpu: error: $*" >&2; exit 1; }
# pip's own lines go to PIPLOG ("Downloading x.whl (475.2 MB)" lines give the download size).
pip_logged() {
  "$PY" -m pip "$@" >>"$PIPLOG" 2>&1 || { tail -20 "$PIPLOG" >&2; die "pip $* failed (log: $PIPLOG)"; }
}

# ---------------------------------------------------------------- 1. TensorFlow with CUDA 12 wheels
mkdir -p "$VENV"
: >"$PIPLOG"
if [ ! -x "$PY" ]; then
  "$PYTHON" -m venv "$VENV"
  pip_logged install --upgrade "pip>=23.2" "setuptools>=69" wheel packaging
fi
say "installing tensorflow[and-cuda]==2.15.1 and the project into $VENV (log: $PIPLOG)"
pip_logged install -e ".[gpu,test,serving]"
pip_logged install "cmake>=3.20"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# The and-cuda pins, read from the installed tensorflow's metadata, against what pip installed.
"$PY" - <<'PYEOF'
import importlib.metadata as md
import re
import sys
pins = {}
for req in md.requires("tensorflow") or []:
    m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*\(?==\s*([^);\s]+)\)?\s*;.*extra\s*==\s*['\"]and-cuda", req)
    if m:
        pins[m.group(1).lower()] = m.group(2)
if not pins:
    sys.exit("build_horovod_gpu: error: tensorflow %s declares no and-cuda extra"
             % md.version("tensorflow"))
bad = []
print("build_horovod_gpu: tensorflow %s and-cuda pins:" % md.version("tensorflow"))
for name, want in sorted(pins.items()):
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = "missing"
    print("  %-26s %-12s installed %s" % (name, want, have))
    if have != want:
        bad.append(name)
if bad:
    sys.exit("build_horovod_gpu: error: %s differ from tensorflow's and-cuda pins; "
             "reinstall with pip install 'tensorflow[and-cuda]==2.15.1'" % ", ".join(bad))
PYEOF

# ---------------------------------------------------------------- 2. the CUDA compiler, explicitly
mkdir -p "$BUILD"
if [ -n "${FASTNN_CUDA_HOME:-}" ]; then
  CUDA_HOME_USED=$FASTNN_CUDA_HOME
  [ -x "$CUDA_HOME_USED/bin/nvcc" ] || die "FASTNN_CUDA_HOME=$CUDA_HOME_USED has no bin/nvcc"
  release=$("$CUDA_HOME_USED/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  [ "$release" = 12 ] || die "FASTNN_CUDA_HOME=$CUDA_HOME_USED has nvcc release $release; \
TensorFlow 2.15.1 runs on CUDA 12: give a CUDA 12.x toolkit, or unset FASTNN_CUDA_HOME to build \
with PyPI's CUDA 13.0 compiler (Turing and newer GPUs, R580+ driver)"
  CC_LIST=${HOROVOD_BUILD_CUDA_CC_LIST:-60,70,75,80,86,89,90}
else
  if [ ! -x "$BUILD/nvidia/cu13/bin/nvcc" ]; then
    say "PyPI has no CUDA 12 nvcc; installing PyPI's CUDA 13.0 compiler wheels into $BUILD"
    # shellcheck disable=SC2086
    pip_logged install --no-deps --target "$BUILD" $CUDA13_WHEELS
  fi
  CUDA_HOME_USED=$BUILD/nvidia/cu13
  # The wheels put the libraries in lib/, where nvcc.profile and CMake look in lib64/, and ship
  # the runtime only under its versioned name, where CMake's FindCUDAToolkit wants libcudart.so.
  [ -e "$CUDA_HOME_USED/lib64" ] || ln -s lib "$CUDA_HOME_USED/lib64"
  [ -e "$CUDA_HOME_USED/lib/libcudart.so" ] || ln -s libcudart.so.13 "$CUDA_HOME_USED/lib/libcudart.so"
  CC_LIST=${HOROVOD_BUILD_CUDA_CC_LIST:-75,80,86,89,90}
fi
NVCC="$CUDA_HOME_USED/bin/nvcc"
say "CUDA compiler: $NVCC ($("$NVCC" --version | grep -o 'release [0-9.]*, V[0-9.]*'))"
say "compute capabilities: $CC_LIST"

# ---------------------------------------------------------------- 3. NCCL from nvidia-nccl-cu12
NCCL_DIR="$SITE/nvidia/nccl"
[ -f "$NCCL_DIR/include/nccl.h" ] && [ -f "$NCCL_DIR/lib/libnccl.so.2" ] \
  || die "no NCCL in $NCCL_DIR: is tensorflow[and-cuda] installed?"
# The wheel ships only libnccl.so.2; the linker looks for the unversioned name.
mkdir -p "$BUILD/nccl-lib"
ln -sfn "$NCCL_DIR/lib/libnccl.so.2" "$BUILD/nccl-lib/libnccl.so"

# ---------------------------------------------------------------- 4. Horovod with NCCL
# Horovod's build_utils runs the first `nvcc` on PATH for the architecture list, and CMake would
# find /usr/local/cuda by itself: every way of finding CUDA points at the chosen toolkit.
if [ "${FASTNN_REBUILD_HOROVOD:-0}" != 1 ] && [ -x "$VENV/bin/horovodrun" ] \
   && PATH="$VENV/bin:$PATH" "$VENV/bin/horovodrun" --check-build 2>/dev/null | grep -q '\[X\] NCCL'; then
  say "horovod with NCCL is already built in $VENV (FASTNN_REBUILD_HOROVOD=1 rebuilds it)"
else
say "building horovod 0.28.1 (log: $LOG)"
"$PY" -m pip uninstall -q -y horovod 2>/dev/null || true
env PATH="$CUDA_HOME_USED/bin:$VENV/bin:$PATH" \
  HOROVOD_CUDA_HOME="$CUDA_HOME_USED" CUDACXX="$NVCC" CUDA_PATH="$CUDA_HOME_USED" \
  CUDAToolkit_ROOT="$CUDA_HOME_USED" CUDA_HOME="$CUDA_HOME_USED" \
  HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_BUILD_CUDA_CC_LIST="$CC_LIST" \
  HOROVOD_NCCL_INCLUDE="$NCCL_DIR/include" HOROVOD_NCCL_LIB="$BUILD/nccl-lib" \
  HOROVOD_NCCL_LINK=SHARED LDFLAGS="-Wl,-rpath,$NCCL_DIR/lib ${LDFLAGS:-}" \
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
  HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo \
  CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS="${MAKEFLAGS:--j2}" \
  "$PY" -m pip install -v --no-build-isolation --no-cache-dir horovod==0.28.1 >"$LOG" 2>&1 \
  || { tail -40 "$LOG" >&2; die "horovod build failed; full log in $LOG"; }
fi

# ---------------------------------------------------------------- 5. proof of what was used
# From CMake's own lines in the build log (kept with the environment), and from the built library.
if [ -f "$LOG" ] && grep -q "Check for working CUDA compiler" "$LOG"; then
  compiler_line=$(grep -m1 "Check for working CUDA compiler" "$LOG" || true)
  kernel_line=$(grep -m1 -E "nvcc .* -c [^ ]*cuda_kernels\.cu" "$LOG" || true)
  nccl_line=$(grep -m1 "Found NCCL (include" "$LOG" || true)
  case "$compiler_line" in *"$NVCC"*) ;; *) die "CMake did not use $NVCC: '$compiler_line'" ;; esac
  case "$kernel_line" in *"$NVCC "*) ;; *) die "cuda_kernels.cu was not compiled by $NVCC" ;; esac
  case "$nccl_line" in *"$NCCL_DIR/include"*"$BUILD/nccl-lib/libnccl.so"*) ;;
    *) die "CMake did not use the NCCL of $NCCL_DIR: '$nccl_line'" ;; esac
  if grep -q "/usr/local/cuda" "$LOG"; then
    die "the build log mentions /usr/local/cuda: $(grep -m1 /usr/local/cuda "$LOG")"
  fi
  LIB=$(ls "$SITE"/horovod/tensorflow/mpi_lib*.so)
  needed=$(readelf -d "$LIB" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  case "$needed" in *libnccl.so.2*) ;; *) die "$LIB does not link libnccl.so.2 (NEEDED: $needed)" ;; esac
  say "$(grep -m1 'The CUDA compiler identification' "$LOG" | sed 's/^ *-- //')"
  say "${compiler_line#*-- }"
  say "cuda_kernels.cu compiled by: $(echo "$kernel_line" | grep -o '[^ ]*/nvcc' | head -1)"
  say "${nccl_line#*-- }"
  say "$(basename "$LIB") needs: $needed"
  say "$(basename "$LIB") runpath: $(readelf -d "$LIB" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')"
else
  say "no CMake output in $LOG to prove the build from (FASTNN_REBUILD_HOROVOD=1 rebuilds)"
fi

# ---------------------------------------------------------------- 6. horovodrun --check-build
# TensorFlow's start-up lines go to a file; the table to the terminal.
check=$(PATH="$VENV/bin:$PATH" "$VENV/bin/horovodrun" --check-build 2>"$VENV/check-build.stderr")
echo "$check"
echo "$check" | grep -Eq '\[X\] NCCL' \
  || die "horovodrun --check-build does not list NCCL (its stderr: $VENV/check-build.stderr)"
say "ok: Horovod lists NCCL among its tensor operations"
# What pip fetched: "Downloading x.whl (475.2 MB)" from the index, "Processing /path/x.whl" from a
# local mirror (this machine has one for some packages; a user's machine downloads those too).
"$PY" - "$PIPLOG" "$LOG" <<'PYEOF'
import os
import re
import sys
units = {"B": 1 / 1048576, "kB": 1 / 1024, "MB": 1.0, "GB": 1024.0}
net = local = 0.0
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        m = re.search(r"Downloading \S+ \(([0-9.]+) ([kMG]?B)\)", line)
        if m:
            net += float(m.group(1)) * units[m.group(2)]
        m = re.search(r"Processing (/\S+\.(?:whl|tar\.gz|zip))\s*$", line)
        if m and os.path.exists(m.group(1)):
            local += os.path.getsize(m.group(1)) / 1048576
print("build_horovod_gpu: pip fetched %.0f MB of packages in this run (%.0f MB downloaded, %.0f MB "
      "from a local mirror)" % (net + local, net, local))
PYEOF
}

main "$@"
