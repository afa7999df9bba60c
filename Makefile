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
# only its wheels (tools/install.py sees it); without it, PyPI. Delete wheelhouse/ to install from PyPI again.
WHEELHOUSE := wheelhouse
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

# The steps of every target come from one list in tools/install.py (which Windows runs without make); make adds only
# its up-to-date checks (the stamps) and the browser.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) tools/install.py install
	@touch $(STAMP)

install: $(STAMP)

APP_STAMP := $(VENV)/.installed-app

$(APP_STAMP): $(STAMP) requirements-app.txt
	$(BIN)/python tools/install.py app-install
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
	$(BIN)/python tools/install.py data --no-install --profile $(PROFILE)

test: install app-install browser  # ends with a table of each step's wall and CPU time (build/test-stages.json)
	$(BIN)/python tools/install.py test --no-install

test-full: install  # every notebook's full-profile path on a real-layout folder, and the copies without boxes, demographics or repeat patients
	MEDXAI_PROFILE=smoke $(BIN)/python -m helpers.synthetic --dataset all
	$(BIN)/python -m pytest tests/test_full_profile.py -m full_path

tutorials: install
	$(BIN)/python tools/install.py tutorials --no-install --profile $(PROFILE)

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
	$(BIN)/python tools/install.py prepare --no-install --profile $(PROFILE) --notebooks $(PREPARE)

figures: install
	$(BIN)/python tools/install.py figures --no-install --profile $(PROFILE)

wheelhouse: install
	$(BIN)/python tools/wheelhouse.py --out $(WHEELHOUSE)

# The students' kit in student/, without the worked answers (between nbgrader's solution markers): notebooks/,
# handout/ (the repository's files to push to STUDENT_BRANCH) and, from the executed notebooks in STUDENT_EXECUTED
# (`make tutorials`), site/ with its Colab/Binder links on STUDENT_BRANCH.
.PHONY: student
STUDENT_EXECUTED ?= build
STUDENT_BRANCH ?= student
student: install
	$(BIN)/python tools/make_student.py --out student --executed $(STUDENT_EXECUTED) --branch $(STUDENT_BRANCH)
