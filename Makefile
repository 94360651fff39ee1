# The project's two commands:  `make up` (start the local fleet)  and  `make test` (run the tests).
# Everything else here is the set-up they share; each step is skipped when its output is current.
# Needs: Python 3.11, Java 17, Maven, Node.js with npm.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
JAR    := deploy/engine/target/mlc-engine.jar
# the same engine built with Operaton from deploy/engine's sources (README "Operaton")
OPERATON_JAR := deploy/engine-operaton/target/mlc-engine-operaton.jar

.PHONY: up test setup engine engine-operaton venv lint lint-bpmn layout-bpmn browser clean

up: setup
	$(BIN)/mlc up

test: setup engine-operaton lint browser
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

setup: venv engine node_modules/.installed

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

engine: $(JAR)
$(JAR): deploy/engine/pom.xml $(shell find deploy/engine/src -type f 2>/dev/null)
	mvn -B -q -f deploy/engine/pom.xml package -DskipTests

engine-operaton: $(OPERATON_JAR)
$(OPERATON_JAR): deploy/engine-operaton/pom.xml $(shell find deploy/engine/src -type f 2>/dev/null)
	mvn -B -q -f deploy/engine-operaton/pom.xml package -DskipTests

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# the tests drive Camunda Tasklist in Debian's Chromium (Playwright uses it, downloads no browser)
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null || { echo "install Chromium at /usr/bin/chromium"; exit 1; }; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint-bpmn: node_modules/.installed
	npx bpmnlint bpmn/*.bpmn

# after editing a process by hand: add <incoming>/<outgoing> and lay out the diagram
layout-bpmn: node_modules/.installed
	node deploy/tools/layout-bpmn.mjs $(FILES)

clean:
	rm -rf $(VENV) node_modules deploy/engine/target deploy/engine-operaton/target .mlc
