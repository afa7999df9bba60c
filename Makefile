# medxai: `make tutorials` runs every notebook (lab profile); `make test` runs the test suite (smoke profile).
# Both start from a fresh machine with Python 3.11: the first run creates .venv and installs everything.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= lab

.PHONY: help install app-install browser app data test unit notebooks tutorials sync bench clean
.PHONY: prepare figures wheelhouse test-full

# Offline laptops: with wheelhouse/ (from `make wheelhouse`, e.g. copied from a USB stick) every pip install reads
# only its wheels; without it, PyPI. Delete wheelhouse/ to install from PyPI again.
WHEELHOUSE := wheelhouse
PIP_SOURCE := $(if $(wildcard $(WHEELHOUSE)/*/*.whl),--no-index $(addprefix --find-links ,$(wildcard $(WHEELHOUSE)/*/)))
PREPARE ?= 02 03 04

help:
	@echo "make tutorials   run every notebook in the lab profile (executed copies and HTML in build/)"
	@echo "make test        unit tests (with the upload page in headless Chromium) and every notebook under nbval side by side, in the smoke profile, then its course site in Chromium"
	@echo "make site        the course site in build/site (PROFILE; runs the notebooks first unless build/ is current)"
	@echo "make app         serve the upload page on http://127.0.0.1:7860/ (MODEL=file.keras, APP_ARGS=...; PROFILE's model by default)"
	@echo "make app-install install the upload page's packages (requirements-app.txt) into .venv"
	@echo "make browser     install Debian's chromium and chromium-driver for the browser test (as root, only when missing)"
	@echo "make data        write the synthetic datasets for PROFILE (default lab)"
	@echo "make sync        pair tutorials/*.py and *.ipynb with jupytext (outputs stripped)"
	@echo "make bench       run the benchmarks under benchmarks/"
	@echo "make clean       remove .venv and build/"
	@echo "make prepare     train and cache the models of notebooks 02, 03 and 04 (PROFILE), so a class can start at 04-07"
	@echo "make figures     export the key plots as PNG and SVG to build/figures/ (PROFILE; fails naming a missing one)"
	@echo "make wheelhouse  download every pinned wheel for Linux, macOS arm64 and Windows into wheelhouse/ (offline installs)"
	@echo "make student     the students' copies in student/: every worked answer replaced by a stub its check reports as not done"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else "Python 3.10 to 3.12 is needed (3.11 recommended); found %d.%d. Set PYTHON=/path/to/python3.11." % v)'
	$(PYTHON) -m venv $(VENV)
	@$(if $(PIP_SOURCE),echo "install: from the wheels in $(WHEELHOUSE)/ with no network (delete $(WHEELHOUSE)/ to use PyPI)")
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) -r requirements.txt
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

APP_STAMP := $(VENV)/.installed-app

$(APP_STAMP): $(STAMP) requirements-app.txt
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) -r requirements-app.txt
	@touch $(APP_STAMP)

app-install: $(APP_STAMP)

# Chromium and chromedriver for tests/test_upload_page.py, from the system packages: only when missing, only as root
# with apt-get. Without them the browser test skips and says why (CI sets MEDXAI_REQUIRE_BROWSER=1: it fails instead).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		echo "browser: $$(chromium --version 2>/dev/null | head -n 1), $$(chromedriver --version | cut -d' ' -f1-2)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser: apt-get install chromium chromium-driver"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
		|| echo "browser: apt-get could not install chromium and chromium-driver; the browser test will skip and say why"; \
	else \
		echo "browser: no chromium/chromedriver and not root with apt-get; the browser test will skip and say why"; \
	fi

app: app-install
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python -m app.upload $(if $(MODEL),--model $(MODEL)) $(APP_ARGS)

data: install
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python -m helpers.synthetic --dataset all

test: install app-install browser
	MEDXAI_PROFILE=smoke $(BIN)/python -m helpers.synthetic --dataset all
	rm -rf build/smoke
	MEDXAI_PROFILE=smoke $(BIN)/python tools/side_by_side.py \
		unit="$(BIN)/python -m pytest tests/ --ignore=tests/test_site.py -m 'not full_path'" \
		notebooks="$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider tutorials/ --save-executed build/smoke"
	$(BIN)/python tools/build_site.py --executed build/smoke --out build/smoke/site --profile smoke
	MEDXAI_SITE_DIR=build/smoke/site $(BIN)/python -m pytest -p no:cacheprovider tests/test_site.py

test-full: install  # every notebook's full-profile path on a real-layout folder (about 15 min on 2 cores)
	MEDXAI_PROFILE=smoke $(BIN)/python -m helpers.synthetic --dataset all
	$(BIN)/python -m pytest tests/test_full_profile.py -m full_path

tutorials: install
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python -m helpers.synthetic --dataset all
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python tools/run_tutorials.py --out build

# The course site in build/site from the executed notebooks in build/: reused when every one is newer than its
# tutorials/ source and ran in PROFILE, otherwise `make tutorials` runs them all first (later notebooks load the
# models earlier ones save, so they run together). `make test` builds the smoke-profile site from its nbval run.
.PHONY: site
site: install
	@$(BIN)/python tools/build_site.py --check-current build --profile $(PROFILE) || $(MAKE) --no-print-directory tutorials PROFILE=$(PROFILE)
	$(BIN)/python tools/build_site.py --executed build --out build/site --profile $(PROFILE)

sync: install
	$(BIN)/jupytext --sync tutorials/[0-9]*.py
	$(BIN)/jupyter nbconvert --clear-output --inplace tutorials/[0-9]*.ipynb

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; MEDXAI_PROFILE=smoke $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build

# The instructor's kit (tutorials/INSTRUCTORS.md).
prepare: install
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python -m helpers.synthetic --dataset all
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python tools/prepare.py --out build/prepare $(PREPARE)

figures: install
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python -m helpers.synthetic --dataset all
	MEDXAI_PROFILE=$(PROFILE) $(BIN)/python tools/export_figures.py --out build/figures

wheelhouse: install
	$(BIN)/python tools/wheelhouse.py --out $(WHEELHOUSE)

# The exercises without their worked answers (nbgrader's ### BEGIN/END SOLUTION markers), for the students.
.PHONY: student
student: install
	$(BIN)/python tools/make_student.py --out student
