# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint browser postgres bench-ingest bench-search clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,gpu,ray,milvus,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m facesearch.demo

# The web tests drive Debian's Chromium (Playwright's own browser downloads are not used).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

# The catalog tests on PostgreSQL start a private server (tests/pg_cluster.py) from Debian's programs.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ($(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql)

test: $(STAMP) browser postgres
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

bench-search: $(STAMP)
	$(PY) bench/search.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
