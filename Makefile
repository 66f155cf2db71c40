# 协商研究助手 — set-up, run and test. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL_DIR := models/multilingual-e5-small
KB_HOME ?= $(CURDIR)/kb_data
PORT ?= 8866
export KB_HOME

.PHONY: setup run index lab team test test-fast bench screenshots clean

setup: $(VENV)/.installed $(MODEL_DIR)/kb_model.json
	@bash scripts/system_deps.sh

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "需要 $(PYTHON)（可用 PYTHON=python3 make ... 指定）"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

$(MODEL_DIR)/kb_model.json: $(VENV)/.installed
	$(BIN)/python -m indexer.model_setup --out $(MODEL_DIR)

index: setup
	$(BIN)/kb index corpus/ ; test $$? -le 1
	$(BIN)/kb topic import corpus/topics.yaml
	$(BIN)/kb cycle import corpus/topics.yaml

run: index
	$(BIN)/kb search 老年助餐补贴标准 --top 3
	PORT=$(PORT) bash scripts/serve_app.sh

lab: index
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --no-browser

# the team server: JupyterHub on 127.0.0.1:8000 with the kb service and, unless KB_DATABASE_URL names
# one, its own PostgreSQL cluster in .team-pg/ (README「团队服务器」)
team: setup
	bash scripts/team.sh

test: setup
	bash scripts/run_tests.sh

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -q

screenshots: index
	KB_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py tests/test_team_hub.py tests/test_cycle.py tests/test_cycle_browser.py

bench: setup
	$(BIN)/python benchmarks/run.py --json

clean:
	rm -rf $(KB_HOME) .pytest_cache
