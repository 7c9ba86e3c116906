# Quick start: `make demo` and `make test`; both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LOCK := requirements.lock
# Where `make lock` finds the CPU build of torch that the lock is resolved against.
TORCH_CPU_WHEELS ?= $(if $(wildcard /opt/wheels),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)

.PHONY: install test demo lint bench clean lock

install: $(STAMP)

# torch goes first and alone so nothing later can pull a newer (CUDA) build; the
# constraint file keeps it there while the project and its pins install.
# The lock holds every other package at the exact version tested; --no-deps installs exactly
# that set (the lock is complete), then avtool itself.
$(STAMP): pyproject.toml $(LOCK) Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip freeze | grep -i '^torch==' > $(VENV)/torch-constraint.txt
	$(BIN)/pip install --quiet --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip install --quiet --no-deps "resemblyzer==0.1.4"
	$(BIN)/pip freeze | grep -i '^torch==' | diff - $(VENV)/torch-constraint.txt
	touch $(STAMP)

# Re-resolve the lock on purpose (after editing pyproject.toml's dependencies), then commit it.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --fork-strategy fewest \
		--python-version 3.11 --no-emit-package torch --override lock-overrides.txt \
		--find-links $(TORCH_CPU_WHEELS) -o $(LOCK)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/avtool demo

lint: $(STAMP)
	$(BIN)/ruff check avtool tests bench
	$(BIN)/ruff format --check avtool tests bench

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) data/demo
