# Two commands do all the set-up: `make demo` and `make test`.
# `make demo` installs the core only (`pip install -e .`), so a newcomer sees a search without PyTorch,
# Ray, Milvus or the PostgreSQL driver; `make test` adds the extras its tests need. One stamp file per
# step: `make test` after `make demo` installs only the extras, `make demo` after `make test` nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORE := $(VENV)/.installed-core
EXTRAS := $(VENV)/.installed-extras

.PHONY: demo test lint browser docs-screenshots postgres bench-ingest bench-search clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(CORE): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $(CORE)

# After the core: a changed pyproject.toml re-runs both steps.
$(EXTRAS): $(CORE)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,gpu,ray,milvus,postgres,eval]'
	touch $(EXTRAS)

demo: $(CORE)
	$(PY) -m facesearch.demo

# The web tests drive Debian's Chromium (Playwright's own browser downloads are not used).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

# docs/img/case-*.png: a case driven through the real server and web app, every face drawn (no real pixels).
docs-screenshots: $(EXTRAS) browser
	$(PY) -m scripts.docs_screenshots

# The catalog tests on PostgreSQL start a private server (tests/pg_cluster.py) from Debian's programs.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ($(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql)

# The suite runs on every core (at most 4 workers): each test module stays on one worker (loadscope),
# so a module's fixtures are built once; modules are handed out longest first (tests/conftest.py LONGEST_FIRST,
# not xdist's reordering by test count), so the workers finish together.
# A single file or test: `.venv/bin/python -m pytest tests/x.py`.
test: $(EXTRAS) browser postgres
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadscope --no-loadscope-reorder

lint: $(EXTRAS)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

# The benchmarks need the core only; they run as modules from the repository root (bench/__init__.py).
bench-ingest: $(CORE)
	$(PY) -m bench.speed.ingest

bench-search: $(CORE)
	$(PY) -m bench.scale.search

clean:
	rm -rf $(VENV) .cache .pytest_cache
