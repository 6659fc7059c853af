# fastnn: `make demo` and `make test` set everything up in .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
GPU    ?= 0
TF_EXTRA := $(if $(filter 1,$(GPU)),gpu,cpu)

# Stamps make `install` idempotent: a second run finds them and installs nothing.
BASE_STAMP := $(VENV)/.fastnn-base-$(TF_EXTRA)
HVD_STAMP  := $(VENV)/.fastnn-horovod-$(TF_EXTRA)

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test bench clean-venv

install: $(BASE_STAMP) $(HVD_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=23.2" "setuptools>=69" wheel packaging

$(BASE_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e ".[$(TF_EXTRA),test,serving]"
	$(PIP) install --no-deps "tf-keras==2.15.1"
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

bench: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/train_throughput.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/input_pipeline.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/resume_cost.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/large_scale.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/serving.py

clean-venv:
	rm -rf $(VENV)
