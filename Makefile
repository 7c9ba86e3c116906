# Quick start: `make demo` and `make test`; both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo lint bench clean

install: $(STAMP)

# torch goes first and alone so nothing later can pull a newer (CUDA) build; the
# constraint file keeps it there while the project and its pins install.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip freeze | grep -i '^torch==' > $(VENV)/torch-constraint.txt
	$(BIN)/pip install --quiet -c $(VENV)/torch-constraint.txt -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "resemblyzer==0.1.4"
	$(BIN)/pip freeze | grep -i '^torch==' | diff - $(VENV)/torch-constraint.txt
	touch $(STAMP)

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
