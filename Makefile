# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Needs: python3 (3.11), java 17, mvn. Everything else is installed here.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
KAFKA_JARS := .local/kafka/libs/.installed

.PHONY: setup demo test unit integration lint bench perf crash kafka-up kafka-down wheel clean \
	lakestore s3-up s3-down pg-up pg-down lake-spike schemas

setup: $(STAMP) $(KAFKA_JARS)

$(STAMP): pyproject.toml requirements.lock
	@echo "==> Python environment ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

$(KAFKA_JARS): streams/ops/broker/resources/pom.xml $(STAMP)
	@echo "==> Kafka jars from Maven Central (first time only)"
	@$(PY) -c "from pathlib import Path; from streams.ops.broker import install_jars; install_jars(Path('.local/kafka'))"
	@touch $@

# The lake's object store: SeaweedFS built once from the Go module proxy (~5 min the first
# time, then cached in ~/.cache/crossings/seaweedfs), when a command or test first needs it
# (not by setup: the demo and the worker do not). PostgreSQL comes from Debian's
# package 'postgresql' (deploy/ci/system-packages.sh postgresql).
lakestore: $(STAMP)
	@$(PY) -m streams.ops.lakestore s3 install >/dev/null

LAKESTORE_DIR ?= .local/lakestore
s3-up: lakestore
	@$(PY) -m streams.ops.lakestore s3 up $(LAKESTORE_DIR)/s3

s3-down: setup
	@$(PY) -m streams.ops.lakestore s3 down $(LAKESTORE_DIR)/s3

# The cluster lives under /tmp: the server runs as 'postgres', who may not enter this folder.
PG_DIR ?= /tmp/crossings-$(shell id -un)-postgres
pg-up: setup
	@$(PY) -m streams.ops.lakestore postgres up $(PG_DIR)

pg-down: setup
	@$(PY) -m streams.ops.lakestore postgres down $(PG_DIR)

# Issue 19's spike: DuckLake, Delta Lake and today's Parquet lake, local and on S3.
lake-spike: setup
	@$(PY) -m load_tests.lake_spike --store local
	@$(PY) -m load_tests.lake_spike --store s3 --catalog postgres --day-hours 1

demo: setup
	@$(PY) -m load_tests.demo

# Tests run in random order (pytest-randomly prints its seed in the header); CROSSINGS_TEST_SEED=N
# repeats the order of the run that printed N, e.g. `CROSSINGS_TEST_SEED=1234 make test`.
ORDER := $(if $(CROSSINGS_TEST_SEED),-p randomly --randomly-seed=$(CROSSINGS_TEST_SEED))

test: setup
	@$(PY) -m pytest $(ORDER) --durations=25

unit: setup
	@$(PY) -m pytest $(ORDER) tests/unit

integration: setup
	@$(PY) -m pytest $(ORDER) tests/integration

# schemas/lake.json: each lake dataset's columns per version, from streams/domain/rows.py.
# Adds new versions; refuses to change a published one (tests/unit/test_rows.py checks it).
schemas: setup
	@$(PY) -m streams.domain.rows schemas/lake.json

lint: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

bench: setup
	@$(PY) -m load_tests.bench_pipeline

perf: setup
	@$(PY) -m load_tests.perf

wheel: setup
	@$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir dist .
	@ls dist/crossings-*.whl

kafka-up: setup
	@$(VENV)/bin/crossings kafka up

kafka-down: setup
	@$(VENV)/bin/crossings kafka down

clean:
	-@$(VENV)/bin/crossings kafka down 2>/dev/null
	rm -rf .local
