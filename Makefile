# The two commands of the README:
#   make report   run the whole course in batch (papermill) and export report/nucleiseg-report.pdf
#   make test     run the tests: pytest (library) + nbval (every notebook, smoke profile)
# Both install what they need first (Python packages from pyproject.toml, Chromium for the PDF).

PYTHON ?= python3
PROFILE ?= auto
DATA ?= auto

.PHONY: install report test
install:
	bash .ci/install-system.sh
	$(PYTHON) -m pip install -q -e ".[dev]"

report: install
	$(PYTHON) -m nucleiseg_lib report --profile $(PROFILE) --data $(DATA) --out report

test: install
	$(PYTHON) -m pytest --nbval-lax
