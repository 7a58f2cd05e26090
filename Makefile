# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   create .venv, install kit, run the main job (DeepCluster vs ODC)
#   make test   create .venv, install kit with the test extras, run every test
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install demo test test-fast bench gpu-check example clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch/torchvision are pinned to the builds on this machine's disk so nothing large is downloaded;
# elsewhere pip picks the matching wheels from PyPI.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(PY) -m pip install -q "torch<=2.14.1" "torchvision<=0.29.1"
	$(PY) -m pip install -q -e ".[all]"
	@# fill the numba cache the targets below use, so the first UMAP in a fresh kernel loads its code
	@# instead of compiling it (kit/analysis/embed.py)
	NUMBA_CACHE_DIR=$(CURDIR)/.cache/numba $(PY) -c "from kit.analysis.embed import warm_up; warm_up(background=False)" \
	  || echo "note: the numba cache warm-up failed; the first UMAP will compile (about 5 s)"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.cache/numba $(PY) -m kit compare $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check kit tests bench docs data
	NUMBA_CACHE_DIR=$(CURDIR)/.cache/numba $(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser and not distributed" $(ARGS)

bench: $(STAMP)
	$(PY) bench/run.py

# the trained example run that ships in kit/teaching/example-run/ (about 45 min on 2 cores): after the presets or the
# recorded fields change (tests/test_example.py says when), then commit kit/teaching/example-run/
example: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.cache/numba $(PY) bench/make_example_run.py $(ARGS)

# on a CUDA machine: the gpu tests, then the timings against the issue's aims (bench/gpu_check.py)
gpu-check: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.cache/numba $(PY) bench/gpu_check.py $(ARGS)

# the notebooks, executed (KIT_FAST=1, USE_EXAMPLE_RUN = True), as a static site in site/ that opens
# offline: plain nbconvert, docs/build_site.py says why. ARGS="--only 02 04" builds a subset.
.PHONY: docs
docs: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.cache/numba KIT_FAST=$${KIT_FAST:-1} $(PY) docs/build_site.py $(ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache
