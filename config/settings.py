"""Docent settings: every knob is read once from the environment.

Unset means the embedded default: the private PostgreSQL and Valkey that `make run`
starts under DOCENT_DATA_DIR (config/servers.py), the offline LLM provider and the
packaged embedding model, so a fresh clone runs with nothing installed by hand. A
malformed value stops start-up with a message naming the variable.

The environment is completed first from the instance's `.env` file (core/envfile.py:
`.env` at the repository root, or $DOCENT_ENV_FILE), which `make run` writes on its
first start; a variable set in the real environment wins over the file.
"""

from __future__ import annotations

import ipaddress
import mimetypes
import os
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

from core.envfile import env_file_path, load_env_file

# Before anything else reads the environment (config.servers does, on import).
ENV_FILE = env_file_path()
load_env_file(ENV_FILE)

from config import servers as embedded_servers  # noqa: E402

BASE_DIR = Path(__file__).resolve().parent.parent
# transformers installs a handler of its own on first import and prints past the logging
# set-up below ("`torch_dtype` is deprecated!" during the one-time ONNX export): errors only.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


# --- tiny typed helpers (healthchecks-style) -------------------------------


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = os.environ.get(name, "") or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def env_url(name: str, default: str, schemes: set[str]) -> str:
    value = os.environ.get(name, "") or default
    if not value:
        return value
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {sorted(schemes)}, got {value!r}")
    return value


# --- core ------------------------------------------------------------------

KEY_FILE_NAME = "secret_key"
SECRET_KEY_MIN_LENGTH = 50


def persistent_secret_key(data_dir: Path) -> str:
    """The instance's own random key, made on first start and kept in `data_dir` (mode 0600).

    Every process of the instance (web, worker, management commands) reads the same file;
    when two start at once, the first to create it wins and the other reads its key. A key
    written into the code would let anyone sign tokens and session cookies for any account.
    """
    path = data_dir / KEY_FILE_NAME
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ImproperlyConfigured(f"Cannot create the secret key file {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(64) + "\n")
            out.flush()
            os.fsync(out.fileno())
    # A process that lost the race may find the file before its writer filled it: wait for a
    # file made a moment ago, never for an old one.
    deadline = time.monotonic() + 5
    while True:
        try:
            key = path.read_text().strip()
            fresh = time.time() - path.stat().st_mtime < 5
        except OSError as exc:
            raise ImproperlyConfigured(f"Cannot read the secret key file {path}: {exc.strerror}") from None
        if len(key) >= SECRET_KEY_MIN_LENGTH or not fresh or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if len(key) < SECRET_KEY_MIN_LENGTH:
        raise ImproperlyConfigured(
            f"The secret key file {path} holds fewer than {SECRET_KEY_MIN_LENGTH} characters: "
            "delete it to have a new key made (every session and token then ends), or set SECRET_KEY."
        )
    return key


DEBUG = env_bool("DEBUG", False)
DEPLOYED = env_bool("DOCENT_PRODUCTION", False)
DATA_DIR = Path(env_str("DOCENT_DATA_DIR", str(BASE_DIR / "var")))
# The key earlier releases wrote into this file when none was set: it is public, so it is
# refused like a short one (tokens and links signed with it must never be accepted again).
PUBLISHED_SECRET_KEYS = {"docent-insecure-development-key-change-me-0123456789abcdef"}
SECRET_KEY = env_str("SECRET_KEY", "")
if SECRET_KEY and (len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH or SECRET_KEY in PUBLISHED_SECRET_KEYS):
    raise ImproperlyConfigured(
        f"SECRET_KEY must be a private random value of at least {SECRET_KEY_MIN_LENGTH} characters "
        "(or leave it unset: Docent then makes one under DOCENT_DATA_DIR)"
    )
if not SECRET_KEY:
    if DEPLOYED:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set to a random value of at least {SECRET_KEY_MIN_LENGTH} characters "
            "when DOCENT_PRODUCTION is on"
        )
    SECRET_KEY = persistent_secret_key(DATA_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "core.admin_site.DocentAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "corsheaders",
    "accounts",
    "projects",
    "documents",
    "agents",
    "workspace",
]

MIDDLEWARE = [
    # Outermost: every response is counted and timed, whichever middleware made it.
    "core.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Header middleware sits outside the rest, so every response carries the headers,
    # including a 413, 429 or 503 made by a middleware further in.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.middleware.PermissionsPolicyMiddleware",
    "core.logging.RequestContextMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "core.uploads.BodySizeLimitMiddleware",
    "core.ratelimit.PageLimitMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database, cache, broker: PostgreSQL and Redis/Valkey ----------------------
#
# One stack everywhere. Unset, DATABASE_URL and REDIS_URL mean the private PostgreSQL 17
# (pgvector, pg_search) and Valkey that `make run` starts under DATA_DIR (config/servers.py,
# unix sockets only); set, they name external servers, for the same code.

DATABASE_URL = env_url("DATABASE_URL", "", {"postgres", "postgresql", "pgsql"})
if DATABASE_URL:
    import dj_database_url

    try:
        _database = dict(dj_database_url.parse(DATABASE_URL, conn_max_age=60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
else:
    _database = {**embedded_servers.database_settings(DATA_DIR), "CONN_MAX_AGE": 60}
_database["CONN_HEALTH_CHECKS"] = True
# Parallel workers a query may start (PostgreSQL's max_parallel_workers_per_gather, set per
# connection). Docent's queries are small and many: a pg_search top-100 started two workers
# for every search, most of a search's database CPU on a 2-core machine, for no shorter wait
# under load. Raise it for a database server with cores to spare and few, large searches.
DB_PARALLEL_WORKERS = env_int("DOCENT_DB_PARALLEL_WORKERS", 0, minimum=0)
# Candidates pgvector's HNSW search keeps (hnsw.ef_search); more recalls more and costs more.
# Never below the depth a search ranks (documents/search: 100). At a million chunks recall@10
# against an exact search is 0.865 at 100 and 0.963 at 400, but at 400 the planner reads a
# SciFact-size project's (11,607 chunks) TOASTed vectors exactly instead of walking its graph,
# and search under load fell from 108 to 23 req/s (bench/README.md): 100 stays the default.
SEARCH_HNSW_EF = env_int("DOCENT_SEARCH_HNSW_EF", 100, minimum=10)
# Set on every connection, so a search is one statement and the planner, knowing the graph's
# cost at this ef_search, reads a small partition's rows and walks a large one's graph; the
# relaxed iterative scan keeps going until the LIMIT is met.
_session = (
    f"-c max_parallel_workers_per_gather={DB_PARALLEL_WORKERS} "
    f"-c hnsw.ef_search={SEARCH_HNSW_EF} -c hnsw.iterative_scan=relaxed_order"
)
_options = dict(_database.get("OPTIONS") or {})
_options["options"] = f"{_options.get('options', '')} {_session}".strip()
_database["OPTIONS"] = _options
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache (rate limits, breaker state, cached pages, user rows), runs' live events
# (Redis Streams) and, unless CELERY_BROKER_URL says otherwise, the Celery broker.
REDIS_URL = env_url("REDIS_URL", "", {"redis", "rediss", "unix"}) or embedded_servers.redis_url(DATA_DIR)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
        "KEY_PREFIX": env_str("DOCENT_CACHE_PREFIX", "docent"),
    }
}

# --- auth ------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- single sign-on: OpenID Connect (accounts/oidc.py, mozilla-django-oidc) ----------
#
# On when a client id is set. The provider is named by its issuer, whose discovery document
# (/.well-known/openid-configuration) is fetched on the first sign-in, not at start-up, and
# cached for an hour; an endpoint set here wins over the discovered one, and with all four set
# no discovery happens at all. ID tokens must be RS256-signed with a key from the JWKS endpoint.
_oidc_schemes = {"https"} if DEPLOYED else {"https", "http"}
OIDC_ISSUER = env_url("DOCENT_OIDC_ISSUER", "", _oidc_schemes)
OIDC_OP_AUTHORIZATION_ENDPOINT = env_url("DOCENT_OIDC_AUTHORIZATION_ENDPOINT", "", _oidc_schemes)
OIDC_OP_TOKEN_ENDPOINT = env_url("DOCENT_OIDC_TOKEN_ENDPOINT", "", _oidc_schemes)
OIDC_OP_USER_ENDPOINT = env_url("DOCENT_OIDC_USERINFO_ENDPOINT", "", _oidc_schemes)
OIDC_OP_JWKS_ENDPOINT = env_url("DOCENT_OIDC_JWKS_ENDPOINT", "", _oidc_schemes)
OIDC_RP_CLIENT_ID = env_str("DOCENT_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("DOCENT_OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = env_str("DOCENT_OIDC_SCOPES", "openid email profile")
OIDC_PROVIDER_NAME = env_str("DOCENT_OIDC_PROVIDER_NAME", "") or "single sign-on"
# Password sign-in, sign-up and reset (pages and API) off: the provider is the only way in.
OIDC_ONLY = env_bool("DOCENT_OIDC_ONLY", False)
# Break-glass for OIDC_ONLY: staff accounts may still sign in with a password (login page and
# admin, not the API), for the day the provider is down.
OIDC_STAFF_PASSWORD = env_bool("DOCENT_OIDC_STAFF_PASSWORD", False)
# Members of this group (in the ID token or userinfo claim named below) are Docent's staff
# (administrators); on each sign-in the claim grants or removes it. Empty: SSO never changes staff.
OIDC_STAFF_GROUP = env_str("DOCENT_OIDC_STAFF_GROUP", "")
OIDC_GROUPS_CLAIM = env_str("DOCENT_OIDC_GROUPS_CLAIM", "") or "groups"
# The claim that says the provider verified the address: accounts are made or linked only when
# it is true. Entra ID sends no `email_verified`; its optional claim `xms_edov` does that job.
OIDC_EMAIL_VERIFIED_CLAIM = env_str("DOCENT_OIDC_EMAIL_VERIFIED_CLAIM", "") or "email_verified"
OIDC_TIMEOUT = env_float("DOCENT_OIDC_TIMEOUT_S", 10.0, minimum=0.1)
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
if OIDC_ENABLED:
    _oidc_endpoints = [OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT]
    if not OIDC_ISSUER and not all([*_oidc_endpoints, OIDC_OP_JWKS_ENDPOINT]):
        raise ImproperlyConfigured(
            "DOCENT_OIDC_CLIENT_ID is set: set DOCENT_OIDC_ISSUER too (or all four of "
            "DOCENT_OIDC_AUTHORIZATION_ENDPOINT, _TOKEN_ENDPOINT, _USERINFO_ENDPOINT and _JWKS_ENDPOINT)"
        )
    if not OIDC_RP_CLIENT_SECRET:
        raise ImproperlyConfigured("DOCENT_OIDC_CLIENT_ID is set: set DOCENT_OIDC_CLIENT_SECRET too")
elif OIDC_ONLY:
    raise ImproperlyConfigured(
        "DOCENT_OIDC_ONLY needs a provider: set DOCENT_OIDC_CLIENT_ID and DOCENT_OIDC_ISSUER"
    )
# mozilla-django-oidc's own knobs: RS256 only, PKCE (S256) and a nonce on every sign-in, our
# views (which resolve the endpoints lazily and show failures on the login page).
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_CREATE_USER = True
OIDC_AUTHENTICATE_CLASS = "accounts.oidc.AuthenticationRequestView"
OIDC_CALLBACK_CLASS = "accounts.oidc.CallbackView"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/"
# Password sign-in keeps Django's own backend (and the sessions it signed) unless OIDC_ONLY
# is on: then a backend that refuses all but break-glass staff takes its place, which also
# ends every password session made before.
AUTHENTICATION_BACKENDS = [
    "accounts.oidc.PasswordBackend" if OIDC_ONLY else "django.contrib.auth.backends.ModelBackend",
    "accounts.oidc.OIDCBackend",
]

# --- i18n / static / media -------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# PDF.js for the PDF viewer, copied there by `make install` (Makefile), served as /static/pdfjs/.
STATICFILES_DIRS = [BASE_DIR / "static", ("pdfjs", BASE_DIR / "vendor" / "pdfjs" / "dist")]
# PDF.js is ES modules (.mjs): a browser runs a module only when it comes as JavaScript.
mimetypes.add_type("text/javascript", ".mjs")
STATIC_ROOT = Path(env_str("DOCENT_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("DOCENT_MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
# Hashed, compressed static files need `collectstatic` (done by `make serve`);
# the embedded default serves them straight from the source folders.
STATIC_MANIFEST = env_bool("DOCENT_STATIC_MANIFEST", DEPLOYED)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
WHITENOISE_AUTOREFRESH = DEBUG

DOCENT_MAX_UPLOAD_MB = env_int("DOCENT_MAX_UPLOAD_MB", 25, minimum=1)
MAX_UPLOAD_BYTES = DOCENT_MAX_UPLOAD_MB * 1024 * 1024
# Bodies above this spill to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Non-file form fields and urlencoded bodies: pasted text up to the upload limit, escaped
# (core/uploads.py; the service measures the text itself against MAX_UPLOAD_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES * 3 + 1024 * 1024
# The first handler stops an upload at MAX_UPLOAD_BYTES while it streams in.
FILE_UPLOAD_HANDLERS = [
    "core.uploads.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Extraction of every format but text and Markdown (OCR included) runs in a child process with
# these limits (documents/extraction/sandbox.py).
EXTRACT_TIMEOUT_S = env_float("DOCENT_EXTRACT_TIMEOUT_S", 120.0, minimum=1.0)
EXTRACT_MEMORY_MB = env_int("DOCENT_EXTRACT_MEMORY_MB", 1024, minimum=128)

# --- document formats: OCR, images, spreadsheets, web pages by URL ---------

# Scanned PDF pages (no text layer) and PNG/JPEG/TIFF images are read with Tesseract, in the
# extraction child above; a document with more pages to OCR than this fails with the reason.
OCR_MAX_PAGES = env_int("DOCENT_OCR_MAX_PAGES", 50, minimum=1)
# Tesseract's -l: installed language packs joined by "+", e.g. "eng+deu".
OCR_LANGUAGES = env_str("DOCENT_OCR_LANGUAGES", "eng")
if not re.fullmatch(r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*", OCR_LANGUAGES):
    raise ImproperlyConfigured(
        f"DOCENT_OCR_LANGUAGES must be Tesseract language codes joined by '+', got {OCR_LANGUAGES!r}"
    )
# Largest image (or image in a PDF) read, in pixels: a decompression bomb stops here.
IMAGE_MAX_PIXELS = env_int("DOCENT_IMAGE_MAX_PIXELS", 50_000_000, minimum=1_000_000)
# Cells read from one XLSX workbook or CSV file; past it the rest is left out, with a note.
SHEET_MAX_CELLS = env_int("DOCENT_SHEET_MAX_CELLS", 500_000, minimum=1000)
# Adding a web page by URL (documents/extraction/fetching.py): private, loopback and link-local
# addresses are refused unless allowed (an intranet); the whole fetch has this long.
URL_FETCH_ALLOW_PRIVATE = env_bool("DOCENT_URL_FETCH_ALLOW_PRIVATE", False)
URL_FETCH_TIMEOUT_S = env_float("DOCENT_URL_FETCH_TIMEOUT_S", 15.0, minimum=1.0)
# Webhooks (projects/webhooks.py): endpoints must be https:// and public, like URL import
# (DOCENT_URL_FETCH_ALLOW_PRIVATE lets them be private, and http://, for local testing;
# DOCENT_WEBHOOK_ALLOW_HTTP allows http:// alone). Each attempt has this long; a message is
# retried after these delays (Standard Webhooks' schedule, about 28 hours in all); an endpoint
# is disabled when this many messages in a row failed every attempt, or nothing it was sent
# succeeded for this many hours.
WEBHOOK_ALLOW_HTTP = env_bool("DOCENT_WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_TIMEOUT_S = env_float("DOCENT_WEBHOOK_TIMEOUT_S", 10.0, minimum=0.1)
WEBHOOK_RETRY_DELAYS_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
WEBHOOK_DISABLE_AFTER_MESSAGES = env_int("DOCENT_WEBHOOK_DISABLE_AFTER_MESSAGES", 3, minimum=1)
WEBHOOK_DISABLE_AFTER_HOURS = env_float("DOCENT_WEBHOOK_DISABLE_AFTER_HOURS", 24.0, minimum=0.0)

# --- security --------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env_bool("DOCENT_SSL_REDIRECT", DEPLOYED)
SESSION_COOKIE_SECURE = env_bool("DOCENT_SECURE_COOKIES", DEPLOYED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DOCENT_HSTS_SECONDS", 31536000 if DEPLOYED else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
BEHIND_PROXY = env_bool("DOCENT_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        # The PDF viewer's PDF.js worker (static/js/viewer.js), a same-origin module.
        "worker-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# CORS for the API only, from an allow-list (browsers elsewhere send no credentials: JWT in a header).
CORS_ALLOWED_ORIGINS = env_list("DOCENT_CORS_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 3600

# --- metrics (/metrics, core/metrics.py) ------------------------------------

# /metrics answers a scraper that sends `Authorization: Bearer <DOCENT_METRICS_TOKEN>`, or
# one calling from DOCENT_METRICS_NETWORKS (CIDRs, e.g. "10.0.0.0/8"); with
# neither set it is a 404. (PROMETHEUS_MULTIPROC_DIR, read by prometheus_client itself,
# makes the values of every web and worker process add up: see the README.)
METRICS_TOKEN = env_str("DOCENT_METRICS_TOKEN", "").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("DOCENT_METRICS_TOKEN must be at least 16 characters (a random value)")


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be a comma-separated list of CIDRs, got {item!r}"
            ) from None
    return networks


METRICS_NETWORKS = env_networks("DOCENT_METRICS_NETWORKS")

# --- rate limits: requests per hour (the policy: core/ratelimit.py) --------

RATE_LIMITS: dict[str, object] = {
    "api": {
        "free": env_int("DOCENT_RATE_API_FREE", 100, minimum=1),
        "pro": env_int("DOCENT_RATE_API_PRO", 1000, minimum=1),
    },
    "anon": env_int("DOCENT_RATE_ANON", 60, minimum=1),
    "runs": {
        "free": env_int("DOCENT_RATE_RUNS_FREE", 20, minimum=1),
        "pro": env_int("DOCENT_RATE_RUNS_PRO", 200, minimum=1),
    },
    "uploads": {
        "free": env_int("DOCENT_RATE_UPLOADS_FREE", 50, minimum=1),
        "pro": env_int("DOCENT_RATE_UPLOADS_PRO", 500, minimum=1),
    },
    "signin_ip": env_int("DOCENT_RATE_SIGNIN_IP", 30, minimum=1),
    # Failed sign-ins for one address from one client, and from all clients together.
    "signin_client": env_int("DOCENT_RATE_SIGNIN_CLIENT", 10, minimum=1),
    "signin_account": env_int("DOCENT_RATE_SIGNIN_ACCOUNT", 100, minimum=1),
    "signup_ip": env_int("DOCENT_RATE_SIGNUP_IP", 20, minimum=1),
    "reset_ip": env_int("DOCENT_RATE_RESET_IP", 20, minimum=1),
    "reset_account": env_int("DOCENT_RATE_RESET_ACCOUNT", 5, minimum=1),
    "verify_ip": env_int("DOCENT_RATE_VERIFY_IP", 20, minimum=1),
    "verify_account": env_int("DOCENT_RATE_VERIFY_ACCOUNT", 5, minimum=1),
    "invites": env_int("DOCENT_RATE_INVITES", 50, minimum=1),
}

# --- email (sign-up confirmations, password resets, invitations) ------------------

# Where every email goes (DOCENT_EMAIL_BACKEND: smtp, outbox, console, dummy, or a backend's
# dotted path). Unset: SMTP when EMAIL_HOST is set or DOCENT_PRODUCTION is on; otherwise the
# outbox, a staff-only page of the admin (accounts/mail.py), where the links that a person
# would have been mailed can be copied: a fresh install without a mail server still works.
EMAIL_BACKEND_ALIASES = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
    "outbox": "accounts.mail.OutboxBackend",
}
SMTP_CONFIGURED = bool(env_str("EMAIL_HOST", "").strip())
_email_backend = env_str("DOCENT_EMAIL_BACKEND", "").strip() or (
    "smtp" if SMTP_CONFIGURED or DEPLOYED else "outbox"
)
EMAIL_BACKEND = EMAIL_BACKEND_ALIASES.get(_email_backend, _email_backend)
if "." not in EMAIL_BACKEND:
    raise ImproperlyConfigured(
        f"DOCENT_EMAIL_BACKEND must be one of {sorted(EMAIL_BACKEND_ALIASES)} or a backend's dotted "
        f"path, got {_email_backend!r}"
    )
DEFAULT_FROM_EMAIL = env_str("DOCENT_FROM_EMAIL", "Docent <docent@localhost>")
EMAIL_HOST = env_str("EMAIL_HOST", "") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Days the outbox keeps a message (its links expire long before).
OUTBOX_DAYS = env_int("DOCENT_OUTBOX_DAYS", 30, minimum=1)
# The first account to sign up on a fresh install (no account yet) is confirmed at once and
# made an administrator (staff and superuser). Off by default in production, where the
# operator makes the first administrator with `manage.py createsuperuser` instead of
# letting the first visitor of a public address take the role.
FIRST_SIGNUP_ADMIN = env_bool("DOCENT_FIRST_SIGNUP_ADMIN", not DEPLOYED)
PASSWORD_RESET_TIMEOUT = 3600  # a reset link works for one hour
# Hours the link that confirms a new account's address works (accounts/verification.py).
EMAIL_VERIFY_HOURS = env_int("DOCENT_VERIFY_LINK_HOURS", 48, minimum=1)
# Days a project invitation can be accepted (projects/invitations.py).
INVITATION_DAYS = env_int("DOCENT_INVITATION_DAYS", 14, minimum=1)

# --- REST API --------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: it takes `Bearer dk_...` (personal API keys) and leaves other bearers to the JWT class.
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.CachedJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A key request also needs the scope the endpoint asks for (accounts/scopes.py).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.scopes.KeyScopePermission",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "core.filters.FilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        # DRF's, refusing deep nesting with a 400 (core/parsers.py).
        "core.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["core.ratelimit.PolicyThrottle"],
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("DOCENT_ACCESS_TOKEN_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("DOCENT_REFRESH_TOKEN_DAYS", 7, minimum=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

# Seconds the API keeps a token's user row in the shared cache (accounts/authentication.py);
# 0 reads it from the database on every request.
AUTH_USER_CACHE_S = env_int("DOCENT_AUTH_CACHE_S", 300, minimum=0)

# Event streams one person may hold open at once, over every web process (agents/streams.py).
STREAMS_PER_USER = env_int("DOCENT_STREAMS_PER_USER", 20, minimum=1)

# Seconds a project's document list page stays cached (core/page_cache.py); every change
# to the project's documents retires its pages at once. 0 builds every page afresh.
LIST_CACHE_S = env_int("DOCENT_LIST_CACHE_S", 300, minimum=0)

SPECTACULAR_SETTINGS = {
    "TITLE": "Docent API",
    "DESCRIPTION": "Projects, documents, hybrid search and grounded agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Every operation also documents its error responses (core/api_schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api_schema.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ProjectStatusEnum": "projects.models.ProjectStatus",
        "DocumentStatusEnum": "documents.models.DocumentStatus",
        "RunStatusEnum": "agents.models.RunStatus",
        # A run's kind keeps its name now that import failures have a `kind` too.
        "KindEnum": "agents.models.RunKind",
        "ImportFailureKindEnum": "documents.selectors.IMPORT_FAILURE_KINDS",
    },
}

# --- stuck-work sweeper ----------------------------------------------------

# A claim older than this is taken to be a dead worker's and may be claimed again. It must
# outlast the longest single document (extraction is capped at DOCENT_EXTRACT_TIMEOUT_S;
# embedding a 25 MB text takes minutes); a killed worker's own job usually resumes sooner,
# when its message comes back (see the visibility timeout below).
STUCK_AFTER_S = env_int("DOCENT_STUCK_AFTER_S", 900, minimum=1)
SWEEP_INTERVAL_S = env_float("DOCENT_SWEEP_INTERVAL_S", 60.0, minimum=1.0)

# --- batch ingest (documents/ingest.py) ---------------------------------------

# Documents one claim takes, and about how many bytes of input: their chunks are embedded
# together, so small documents still fill the encoder's batches.
INGEST_BATCH_DOCS = env_int("DOCENT_INGEST_BATCH_DOCS", 64, minimum=1)
INGEST_BATCH_BYTES = env_int("DOCENT_INGEST_BATCH_MB", 32, minimum=1) * 1024 * 1024
# A job stops claiming after this long and wakes the next one, so no broker message stays
# unacknowledged anywhere near the visibility timeout.
INGEST_JOB_S = env_float("DOCENT_INGEST_JOB_S", 60.0, minimum=1.0)
# While a wake-up is queued, new documents publish nothing more; after this long without a
# job starting, the next document publishes again (a lost message costs at most this).
INGEST_WAKE_TTL_S = env_int("DOCENT_INGEST_WAKE_TTL_S", 30, minimum=1)

# --- Celery ----------------------------------------------------------------


def _broker_from(redis_url: str) -> str:
    """The Celery broker on the same Redis/Valkey: kombu names a unix socket `redis+socket://`."""
    if redis_url.startswith("unix://"):
        parsed = urlparse(redis_url)
        db = dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part).get("db", "0")
        return f"redis+socket://{parsed.path}?virtual_host={db}"
    return redis_url


CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL",
    _broker_from(REDIS_URL),
    {"redis", "rediss", "redis+socket", "amqp", "pyamqp", "memory"},
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("redis"):
    # A task not acknowledged within the visibility timeout (its worker was killed) is
    # delivered again. It must outlast the longest task, or a live one runs twice: an
    # ingest job stops claiming after DOCENT_INGEST_JOB_S (60 s) plus the batch in hand,
    # an agent run is bounded by DOCENT_LLM_TIMEOUT_S times its retries (about 240 s).
    # kombu checks for such messages every interval x throttle seconds (10 x 10 = 100 s
    # by default, which is why a killed worker's job came back after ~115 s); every 5 s
    # here, so a lost job returns within visibility timeout + 5 s. Retry delays stay
    # under it too (retry_backoff_max=30 s): a countdown task is held unacknowledged.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("DOCENT_BROKER_VISIBILITY_TIMEOUT_S", 300, minimum=1),
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("DOCENT_TASKS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ROUTES = {
    "documents.*": {"queue": "ingest"},
    "agents.*": {"queue": "agents"},
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Days an audit event is kept; the hourly purge below deletes older ones (accounts.audit).
AUDIT_DAYS = env_int("DOCENT_AUDIT_DAYS", 365, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-documents": {"task": "documents.requeue_stuck", "schedule": SWEEP_INTERVAL_S},
    "requeue-stuck-runs": {"task": "agents.requeue_stuck", "schedule": SWEEP_INTERVAL_S},
    "webhooks-deliver-due": {"task": "projects.webhooks_deliver_due", "schedule": SWEEP_INTERVAL_S},
    # The audit log's retention (DOCENT_AUDIT_DAYS); an hour's lateness is of no consequence.
    "purge-audit-events": {"task": "accounts.audit_purge", "schedule": 3600},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# A failed publish must not hang the request that created the object.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}

# --- embeddings and search -------------------------------------------------

EMBEDDING_MODEL = env_str("DOCENT_EMBEDDING_MODEL", "")  # empty: the packaged all-MiniLM-L6-v2
# Texts per encoder call. Small batches are as fast on CPU (texts are sorted by length, so
# little padding) and keep a worker's memory low: on SciFact chunks with the int8 model, one
# thread, batch 4 gave 63 chunks/s at 272 MB resident, batch 64 gave 46 chunks/s at 1.1 GB
# (ONNX Runtime's arena keeps the largest batch's activations).
EMBEDDING_BATCH_SIZE = env_int("DOCENT_EMBEDDING_BATCH_SIZE", 4, minimum=1)
EMBEDDING_THREADS = env_int("DOCENT_EMBEDDING_THREADS", 1, minimum=1)
# onnx-int8: ONNX Runtime on an int8 copy of the model (about 4x faster per query than
# torch, same ranking quality); onnx: fp32 ONNX; torch: the model as shipped.
EMBEDDING_BACKEND = env_choice("DOCENT_EMBEDDING_BACKEND", "onnx-int8", {"onnx-int8", "onnx", "torch"})
# Where the ONNX copies are exported, once, from the local model (never downloaded).
MODEL_DIR = Path(env_str("DOCENT_MODEL_DIR", str(DATA_DIR / "models")))
CHUNK_TOKENS = env_int("DOCENT_CHUNK_TOKENS", 200, minimum=16)
CHUNK_OVERLAP_TOKENS = env_int("DOCENT_CHUNK_OVERLAP_TOKENS", 40, minimum=0)
SEARCH_RRF_K = env_int("DOCENT_SEARCH_RRF_K", 20, minimum=1)
SEARCH_MAX_K = env_int("DOCENT_SEARCH_MAX_K", 100, minimum=1)
# The language of the lexical index's stemmer and stop words (pg_search); after changing it,
# `manage.py migrate` (run by `make run`) rebuilds the index.
SEARCH_LANGUAGE = env_choice(
    "DOCENT_SEARCH_LANGUAGE",
    "english",
    {
        "arabic",
        "danish",
        "dutch",
        "english",
        "finnish",
        "french",
        "german",
        "greek",
        "hungarian",
        "italian",
        "norwegian",
        "portuguese",
        "romanian",
        "russian",
        "spanish",
        "swedish",
        "tamil",
        "turkish",
    },
)

# --- agents and LLM providers ----------------------------------------------

LLM_PROVIDER = env_choice("DOCENT_LLM_PROVIDER", "auto", {"auto", "gemini", "openai", "offline"})
GEMINI_API_KEY = env_str("GEMINI_API_KEY", "")
GEMINI_MODEL = env_str("DOCENT_GEMINI_MODEL", "gemini-2.5-flash")
GEMINI_BASE_URL = env_url("DOCENT_GEMINI_BASE_URL", "", {"http", "https"})
# Any server speaking the OpenAI Chat Completions API: OpenAI, Ollama, vLLM, llama.cpp, LM Studio.
OPENAI_BASE_URL = env_url("DOCENT_OPENAI_BASE_URL", "", {"http", "https"})
OPENAI_API_KEY = env_str("DOCENT_OPENAI_API_KEY", "")  # local servers need none
OPENAI_MODEL = env_str("DOCENT_OPENAI_MODEL", "gpt-4o-mini")
OPENAI_RESPONSE_FORMAT = env_choice(
    "DOCENT_OPENAI_RESPONSE_FORMAT", "json_schema", {"json_schema", "json_object", "none"}
)
OPENAI_MAX_TOKENS = env_int("DOCENT_OPENAI_MAX_TOKENS", 2048, minimum=0)  # 0: the server's limit
OPENAI_CONNECT_TIMEOUT_S = env_float("DOCENT_OPENAI_CONNECT_TIMEOUT_S", 10.0, minimum=0.1)
LLM_TIMEOUT_S = env_float("DOCENT_LLM_TIMEOUT_S", 60.0, minimum=1.0)
LLM_MAX_RETRIES = env_int("DOCENT_LLM_MAX_RETRIES", 3, minimum=0)
BREAKER_FAILURE_THRESHOLD = env_int("DOCENT_BREAKER_FAILURES", 5, minimum=1)
BREAKER_WINDOW_S = env_int("DOCENT_BREAKER_WINDOW_S", 60, minimum=1)
BREAKER_COOLDOWN_S = env_int("DOCENT_BREAKER_COOLDOWN_S", 30, minimum=1)
BREAKER_FALLBACK = env_bool("DOCENT_BREAKER_FALLBACK", True)
# Gemini tokens (input + output) a user may spend per calendar month, by tier.
TOKEN_BUDGETS = {
    "free": env_int("DOCENT_TOKEN_BUDGET_FREE", 200_000, minimum=0),
    "pro": env_int("DOCENT_TOKEN_BUDGET_PRO", 5_000_000, minimum=0),
}
AGENT_CONTEXT_CHUNKS = env_int("DOCENT_AGENT_CONTEXT_CHUNKS", 8, minimum=1)


# --- logging ---------------------------------------------------------------

LOG_LEVEL = env_choice("DOCENT_LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"})
LOG_FORMAT = env_choice("DOCENT_LOG_FORMAT", "json", {"json", "plain"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    # What an ordinary day says and nobody needs to read: probe and static-file requests,
    # Django's traceback for a 404 or 403, kombu's "No hostname", the model export's chatter
    # (core/logging.py). At DOCENT_LOG_LEVEL=DEBUG everything is shown.
    "filters": {
        "quiet": {
            "()": "core.logging.QuietFilter",
            "static_url": STATIC_URL,
            "everything": LOG_LEVEL == "DEBUG",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["quiet"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The request middleware logs every request with its id; skip Django's duplicate.
        "django.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # The MCP SDK's line per request and per tool error; agents/mcp.py logs its own.
        "mcp": {"level": "WARNING"},
        # Model loading and the one-time ONNX export: their warnings and errors only.
        "sentence_transformers": {"level": "WARNING"},
        "optimum": {"level": "WARNING"},
        "torch": {"level": "WARNING"},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
