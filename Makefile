# medxai: `make tutorials` runs every notebook (lab profile); `make test` runs the test suite (smoke profile).
# Both start from a fresh machine with Python 3.11: the first run creates .venv and installs everything.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= lab

.PHONY: help install data test unit notebooks tutorials sync bench clean

help:
	@echo "make tutorials   run every notebook in the lab profile (executed copies and HTML in build/)"
	@echo "make test        unit tests, then every notebook under nbval, in the smoke profile"
	@echo "make data        write the synthetic datasets for PROFILE (default lab)"
	@echo "make sync        pair tutorials/*.py and *.ipynb with jupytext (outputs stripped)"
	@echo "make bench       run the benchmarks under benchmarks/"
	@echo "make clean       remove .venv and build/"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else "Python 3.10 to 3.12 is needed (3.11 recommended); found %d.%d. Set PYTHON=/path/to/python3.11." % v)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

data: install
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python -m helpers.synthetic --dataset all

test: install
	MEDXAI_PROFILE=smoke $(BIN)/python -m helpers.synthetic --dataset all
	MEDXAI_PROFILE=smoke $(BIN)/python -m pytest tests/
	MEDXAI_PROFILE=smoke $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider tutorials/

tutorials: install
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python -m helpers.synthetic --dataset all
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python tools/run_tutorials.py --out build

sync: install
	$(BIN)/jupytext --sync tutorials/[0-9]*.py
	$(BIN)/jupyter nbconvert --clear-output --inplace tutorials/[0-9]*.ipynb

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; MEDXAI_PROFILE=smoke $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build
