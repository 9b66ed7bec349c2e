# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The Postman tests use Node tools (package.json); without npm they are skipped.
NPM := $(shell command -v npm 2>/dev/null)
NODE_TOOLS := $(if $(NPM),node_modules/.installed)

.PHONY: run dev test coverage lint format bench install install-dev init-db clean

run: $(VENV)/.installed ## serve the API on http://$${HOST:-127.0.0.1}:$${PORT:-5000}
	$(BIN)/python launcher.py

dev: $(VENV)/.installed ## the same address, with Flask's reloader: an edit is live on save
	$(BIN)/python launcher.py --dev

test: $(VENV)/.installed-dev $(NODE_TOOLS) ## lint and type-check, then run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

coverage: $(VENV)/.installed-dev $(NODE_TOOLS) ## the whole suite, then the application's line coverage (the tests' own lines not counted)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --cov=. --cov-report=term

lint: $(VENV)/.installed-dev ## ruff and mypy: lint, check formatting and types (make test runs this first)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-dev ## ruff: fix what can be fixed and format every file
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed ## measure the API against its floor (a few minutes; installs wrk if needed)
	$(BIN)/python bench/run.py

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(NODE_TOOLS)

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

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean: ## remove the virtual environment, Node tools and caches (keeps instance/ data)
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache examples/typescript/build examples/typescript/api.d.ts
