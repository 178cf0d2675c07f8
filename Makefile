# Every target creates or reuses .venv on its own: `make demo` and `make test` are all the set-up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench notebook clean-venv

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ganhelpers demo

test: $(STAMP)
	$(PY) tools/pytest_in_two.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# Jupyter Notebook is not in requirements-dev.txt (tests execute notebooks with nbclient alone): it is
# installed into .venv the first time this target runs.
notebook: $(STAMP)
	test -x $(VENV)/bin/jupyter-notebook || $(PY) -m pip install --quiet "notebook>=7"
	$(VENV)/bin/jupyter notebook notebooks/

clean-venv:
	rm -rf $(VENV)
