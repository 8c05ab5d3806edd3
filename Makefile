# Docent: `make run` starts web + worker on the embedded defaults; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test install lint serve worker beat migrate clean bench-retrieval

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so pip takes the CPU wheel on disk and never a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

# Web (gunicorn) and a real Celery worker with its sweeper, on SQLite and a filesystem broker.
run: migrate
	@echo "Docent on http://127.0.0.1:$(PORT)/  (Ctrl-C stops web and worker)"
	@trap 'kill 0' EXIT INT TERM; \
	$(VENV)/bin/celery -A config worker --beat -Q ingest,agents,default --concurrency 2 --loglevel INFO & \
	$(VENV)/bin/gunicorn config.wsgi --config config/gunicorn.py --bind 127.0.0.1:$(PORT)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-retrieval: migrate
	$(PY) bench/retrieval.py

clean:
	rm -rf $(VENV) var staticfiles
