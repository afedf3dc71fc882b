# The two commands of the README, from a plain clone:
#   make report   run the whole course in batch (papermill) and export report/nucleiseg-report.pdf
#   make test     run the tests: pytest (library) + nbval (every notebook, smoke profile)
# Both install what they need first: the Python packages of pyproject.toml into a virtual environment, and the
# system packages of the PDF (Chromium, poppler, fonts) where apt-get exists (elsewhere: skipped, with a line on
# how to get a browser).
#
# Python: the active virtual environment (or conda env) when there is one; otherwise .venv, created here with
# python3.11 when present, else python3 (system Pythons refuse `pip install`: PEP 668). PYTHON=... overrides.

PROFILE ?= auto
DATA ?= auto
VENV ?= .venv
BASE_PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

ifneq ($(VIRTUAL_ENV)$(CONDA_PREFIX),)
PYTHON ?= python
else
PYTHON ?= $(VENV)/bin/python
endif

.PHONY: install report test venv
venv:
	@if [ "$(PYTHON)" = "$(VENV)/bin/python" ] && [ ! -x "$(VENV)/bin/python" ]; then \
		echo "make: creating the virtual environment $(VENV) with $(BASE_PYTHON)"; \
		$(BASE_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
			echo "make: cannot create $(VENV); on Debian/Ubuntu: sudo apt-get install python3-venv"; exit 1; }; \
	fi

install: venv
	$(PYTHON) -m pip install -q -e ".[dev]"
	PYTHON="$(PYTHON)" bash .ci/install-system.sh

report: install
	$(PYTHON) -m nucleiseg_lib report --profile $(PROFILE) --data $(DATA) --out report

test: install
	$(PYTHON) -m pytest --nbval-lax
