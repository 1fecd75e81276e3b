# Two commands on a fresh machine (see README.md):
#   make demo   installs everything into .venv and runs the demo (synthesise, pretrain, embed, serve)
#   make test   installs everything into .venv and runs the test suite
# On a machine without CUDA the CPU build of torch is installed first, so pip never pulls
# several GB of CUDA packages. Set TORCH_INDEX to a wheel index URL to choose another build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
DEMO_DIR ?= demo-workspace
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test lint browser bench pictures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml binder/requirements.txt | $(BIN)/python
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "CUDA found: installing torch with CUDA"; $(BIN)/pip install -q "torch>=2.2"; \
	else \
	  echo "no CUDA: installing the CPU build of torch $(TORCH_VERSION) first"; \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	@# the Binder pins (binder/requirements.txt) as constraints: the tested set is the Binder set.
	@# torch is left to the line above (CPU or CUDA build); the pins need Python 3.11+.
	sed -n -e '/^[a-zA-Z]/{/^torch/d;s/$$/ ; python_version >= "3.11"/;p}' binder/requirements.txt > $(VENV)/constraints.txt
	$(BIN)/pip install -q -e ".[dev,binder]" -c $(VENV)/constraints.txt
	touch $@

install: $(VENV)/.installed

# Debian's chromium for the browser (ui) tests; never `playwright install`.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: ui tests will be skipped (apt-get install chromium)"; fi; \
	fi

demo: install
	$(BIN)/insarexplore demo $(DEMO_DIR) $(DEMO_ARGS)

test: install browser
	$(BIN)/ruff check insarexplore tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check insarexplore tests benchmarks
	$(BIN)/ruff format --check insarexplore tests benchmarks

bench: install
	$(BIN)/python benchmarks/run_all.py

# The README's pictures (docs/screenshot.png, docs/step-*.png) from the demo, in chromium.
pictures: install browser
	$(BIN)/python scripts/readme_pictures.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
