# Sora: `make run` starts everything on embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml))) contrib/example-plugin/
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) contrib/example-plugin/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach p,$(PLUGIN_DIRS),-e $(p))
	touch $(STAMP)

install: $(STAMP)

run: install
	@test -f sora.toml || $(BIN)/sora init --data-dir ./data
	@$(BIN)/sora accounts demo
	@echo "Connect: IMAP 127.0.0.1:1143, POP3 127.0.0.1:1110, LMTP 127.0.0.1:2424, ManageSieve 127.0.0.1:4190 (see sora.toml). Ctrl-C stops."
	exec $(BIN)/sora serve

lint: install
	$(BIN)/ruff check sora_kernel sora_cli plugins contrib tests
	$(BIN)/mypy sora_kernel sora_cli
	$(BIN)/mypy $(foreach p,$(PLUGIN_DIRS),$(p)src)

test: install lint
	$(BIN)/python -m pytest -q -p no:randomly

clean:
	rm -rf $(VENV) data sora.toml
