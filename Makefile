# The course's commands. Every target bootstraps .venv from nothing when it is missing.
#   make lab       JupyterLab on the course, with the course-cpu and course-gpu kernels
#   make test      everything CI checks (import layers, unit tests, pipeline consistency, nbval, exercise runs)
#   make test-gpu  the stored outputs re-checked on the GPU kernel (needs a CUDA GPU)
#   make build     regenerate every chapter's full, exercise and answer-key notebooks
#   make data      prepare the offline datasets into data/cache (or $COURSE_DATA)
#   make gpu-bundle     pack wheels and data for a bare GPU machine into .gpu/<bundle>/ (gpu_kit/)
#   make gpu-dry-run    run gpu_kit/run.sh --dry-run on every bundle here (no GPU, no notebooks run)
#   make clean     remove .venv, the data cache, the GPU bundles and Python caches

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.ready
JOBS   ?= 2
LAB_ARGS ?=
# JupyterLab refuses to start as root (containers, CI) unless told that this is deliberate.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL  := --nbval --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=600

.PHONY: setup lab test test-gpu build data gpu-bundle gpu-dry-run clean

setup: $(READY)

$(READY): requirements.txt pyproject.toml
	@echo "== setting up $(VENV) with $(PYTHON)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name course-cpu --display-name "Course (CPU)" \
		--env COURSE_DEVICE cpu --env PYTHONHASHSEED 0
	$(BIN)/python -m ipykernel install --sys-prefix --name course-gpu --display-name "Course (GPU)" \
		--env COURSE_DEVICE cuda --env PYTHONHASHSEED 0
	touch $@

lab: setup
	$(BIN)/jupyter lab --notebook-dir=. $(LAB_ROOT) $(LAB_ARGS)

data: setup
	$(BIN)/course data

test: setup data
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope --no-loadscope-reorder --durations=20 tests chapters/[0-9]*.ipynb \
		$(NBVAL) --nbval-kernel-name course-cpu

test-gpu: setup data
	$(BIN)/python -m pytest -n 1 chapters/[0-9]*.ipynb $(NBVAL) --nbval-kernel-name course-gpu

build: setup data
	$(BIN)/course build

gpu-bundle: setup data
	$(BIN)/python -m gpu_kit.bundle

gpu-dry-run: gpu-bundle
	@set -e; for bundle in $$($(BIN)/python -c "from gpu_kit.config import BUNDLES; print(*BUNDLES)"); do \
		bash gpu_kit/run.sh .gpu/$$bundle --dry-run; done

clean:
	rm -rf $(VENV) data/cache .gpu .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
