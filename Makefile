# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench install install-dev init-db clean

run: $(VENV)/.installed ## serve the API on http://$${HOST:-127.0.0.1}:$${PORT:-5000}
	$(BIN)/python launcher.py

test: $(VENV)/.installed-dev ## lint, then run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev ## ruff: lint and check formatting (make test runs this first)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev ## ruff: fix what can be fixed and format every file
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed ## measure the API against its floor (a few minutes; installs wrk if needed)
	$(BIN)/python bench/run.py

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

init-db: $(VENV)/.installed ## create the indexes on DATABASE_URL
	$(BIN)/flask --app app:create_app init-db

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

clean: ## remove the virtual environment and caches (keeps instance/ data)
	rm -rf $(VENV) .pytest_cache
