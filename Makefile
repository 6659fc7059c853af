# fastnn: `make demo` and `make test` set everything up in .venv on first use.
PYTHON ?= python3.11
GPU    ?= 0
# GPU=1 builds its own environment, so the CPU .venv stays as it is (docs/distributed.md, "GPUs").
VENV   := $(if $(filter 1,$(GPU)),.venv-gpu,.venv)
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TF_EXTRA := $(if $(filter 1,$(GPU)),gpu,cpu)

# Stamps make `install` idempotent: a second run finds them and installs nothing.
BASE_STAMP := $(VENV)/.fastnn-base-$(TF_EXTRA)
HVD_STAMP  := $(VENV)/.fastnn-horovod-$(TF_EXTRA)

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test test-cluster bench clean-venv check-gpu-build

ifeq ($(GPU),1)
# TensorFlow's CUDA 12 wheels and Horovod built with NCCL: scripts/build_horovod_gpu.sh.
GPU_STAMP := $(VENV)/.fastnn-gpu
install: $(GPU_STAMP)
$(GPU_STAMP): pyproject.toml scripts/build_horovod_gpu.sh
	PYTHON=$(PYTHON) bash scripts/build_horovod_gpu.sh $(VENV)
	touch $@
else
install: $(BASE_STAMP) $(HVD_STAMP)
endif

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=23.2" "setuptools>=69" wheel packaging

$(BASE_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e ".[$(TF_EXTRA),test,serving]"
	$(PIP) install --no-deps "tf-keras==2.15.1"
	# TF Serving's protos and gRPC stubs; its wheel depends on the full `tensorflow` wheel, which
	# must not land beside tensorflow-cpu (DESIGN.md trap 11): grpcio and protobuf come from TF.
	$(PIP) install --no-deps "tensorflow-serving-api==2.15.1"
	touch $@

# Horovod 0.28.1 has no pyproject.toml: it must be built against the TensorFlow already in the
# venv, without build isolation (DESIGN.md, known trap 4).  cmake comes from PyPI so the build
# needs nothing installed by hand; CMake 4 needs the policy minimum.
# Order-only on the base: editing pyproject.toml re-runs the quick pip step, not this build.
$(HVD_STAMP): | $(BASE_STAMP)
	$(PIP) install "cmake>=3.20"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CMAKE_POLICY_VERSION_MINIMUM=3.5 \
	  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
	  HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo \
	  MAKEFLAGS="-j2" $(PIP) install --no-build-isolation --no-cache-dir horovod==0.28.1
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/horovodrun --check-build
	touch $@

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# Two xdist workers, whole files each (module fixtures are built once): the suite waits on
# subprocesses and single-threaded graph building often enough that a second worker pays on two
# cores.  TEST_ARGS passes extra options, e.g. `make test TEST_ARGS="-k models"`.
TEST_ARGS ?=
test: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q -n 2 --dist loadfile $(TEST_ARGS)

# The multi-host tests (tests/cluster/, not collected by `make test`): hosts h1, h2 as network
# namespaces on this machine with their own sshd (scripts/testcluster.sh, which installs
# openssh-server when missing), then horovodrun across them.  Needs root; skipped, with the
# reason, without it.  The cluster is torn down here too, should pytest die before its fixture does.
test-cluster: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q -n 0 tests/cluster $(TEST_ARGS); \
	  status=$$?; [ "$$(id -u)" != 0 ] || bash scripts/testcluster.sh down >/dev/null 2>&1; \
	  exit $$status

bench: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/train_throughput.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/input_pipeline.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/resume_cost.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/large_scale.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/serving.py

clean-venv:
	rm -rf $(VENV)

# The GPU build from scratch (a new environment, an empty pip cache), with its wall time; the
# script prints what pip fetched (docs/distributed.md, "GPUs").  Compiles without a GPU; gigabytes
# of wheels, so not part of `make test`.  KEEP_GPU_CHECK=1 keeps .venv-gpu-check afterwards.
GPU_CHECK := .venv-gpu-check
check-gpu-build:
	rm -rf $(GPU_CHECK) $(GPU_CHECK).pip-cache
	start=$$(date +%s); \
	  PIP_CACHE_DIR="$(CURDIR)/$(GPU_CHECK).pip-cache" PYTHON=$(PYTHON) \
	    bash scripts/build_horovod_gpu.sh $(GPU_CHECK) && \
	  echo "check-gpu-build: $$(( $$(date +%s) - start )) s from scratch; environment:" \
	    "$$(du -sm $(GPU_CHECK) | cut -f1) MB on disk"
	rm -rf $(GPU_CHECK).pip-cache
	[ "$(KEEP_GPU_CHECK)" = 1 ] || rm -rf $(GPU_CHECK)
