"""Django settings, read from the environment (12-factor).

Every variable has an embedded default that needs no external service, except
``SECRET_KEY`` which must be set when ``DEBUG`` is off. Bad values fail loudly at
start-up instead of being silently replaced by a default.
"""

from __future__ import annotations

import os
import re
import secrets
import zoneinfo
from datetime import timedelta
from pathlib import Path

import dj_database_url
import dotenv
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange as KombuExchange
from kombu import Queue as KombuQueue

from mes import crypto, netguard
from mes.logformat import json_formatter
from mes.queues import Queues

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MES_VAR_DIR", BASE_DIR / "var"))

# An environment file: `make demo` writes `var/.env` (DEBUG=1), so every command run in
# another shell after it (`.venv/bin/python manage.py ...`, `.venv/bin/celery -A mes ...`)
# has the demo's settings without exporting anything. A variable set in the environment
# wins over the file. MES_ENV_FILE names another file, or none when empty (the tests'
# setting). A production deployment sets its environment and has no such file.
MES_ENV_FILE = os.environ.get("MES_ENV_FILE", str(VAR_DIR / ".env")).strip()
if MES_ENV_FILE:
    dotenv.load_dotenv(MES_ENV_FILE, override=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _secret_key(debug: bool) -> str:
    key = os.environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Demo/development: generate once and keep it under var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = _secret_key(DEBUG)

# Secrets the MES keeps in its database (the HMAC keys of ERP endpoints) are encrypted
# (Fernet, mes/crypto.py). MES_FIELD_ENCRYPTION_KEY: one or more secrets of at least 32
# characters, comma-separated; the first encrypts, all decrypt (to rotate, put a new one
# first; secrets entered again are then encrypted with it). Unset: a key derived from
# SECRET_KEY (HKDF-SHA256), so changing SECRET_KEY then makes the stored secrets unreadable:
# enter them again (deliveries fail with a message saying so until then).
try:
    MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment(
        os.environ.get("MES_FIELD_ENCRYPTION_KEY", ""), SECRET_KEY
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"MES_FIELD_ENCRYPTION_KEY: {exc}") from None

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_filters",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "mes",
    "mes.quality",
    "mes.calendars",
    "mes.performance",
    "erp_sync",
    "shopfloor",
    "shopfloor.terminal",
]

MIDDLEWARE = [
    "mes.metrics.RequestMetricsMiddleware",  # outermost: times everything below
    "mes.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the path, the query, a form or the session cookie: a NUL byte
    # there is a 400, not a database error.
    "mes.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: answers a locked-out password sign-in (django-axes).
    "axes.middleware.AxesMiddleware",
]

# Password sign-in (/accounts/login/ and /admin/login/) is throttled by django-axes: after
# MES_LOGIN_MAX_FAILURES wrong passwords for one account, or from one client address, that
# account or address is refused for MES_LOGIN_LOCKOUT_SECONDS (also with the right
# password), with a page that says so. Attempts are kept in the database (every server
# process counts the same) and logged with the user name and address, never the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("MES_LOGIN_MAX_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("MES_LOGIN_LOCKOUT_SECONDS", 900, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Failures during a lockout do not prolong it (else one person could keep an account or
# the proxy's address locked for ever).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client's address: behind the TLS proxy (MES_BEHIND_TLS) the last X-Forwarded-For
# entry, the one the proxy added; else the connection's.
AXES_CLIENT_IP_CALLABLE = "mes.security.client_address"
AXES_LOCKOUT_CALLABLE = "mes.security.lockout_response"
AXES_VERBOSE = False

ROOT_URLCONF = "mes.urls"
WSGI_APPLICATION = "mes.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{VAR_DIR / 'mes.sqlite3'}"
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except ValueError as exc:  # unknown scheme and the like
    raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None

if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock at BEGIN, so two writers serialise like
    # SELECT ... FOR UPDATE does on PostgreSQL instead of failing at commit time.
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that threads and worker processes in tests share it.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test_mes.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql" and env_bool("MES_DB_POOL", True):
    # A bounded pool of connections per process (psycopg_pool, Django's OPTIONS["pool"]):
    # a request or task borrows one and gives it back when Django closes it (at the end of
    # the request, after each Celery task), so a process never holds more than
    # MES_DB_POOL_MAX_SIZE; a thread that finds them all lent waits up to
    # MES_DB_POOL_TIMEOUT seconds, then fails. The bound is per process: every gunicorn
    # worker and every Celery worker process has its own pool, so PostgreSQL sees at most
    # (processes x MES_DB_POOL_MAX_SIZE) from the MES; keep that under its
    # max_connections. Give a web process at least as many as its threads (gunicorn
    # --threads). MES_DB_POOL=0 turns the pool off (behind PgBouncer, say); then
    # DB_CONN_MAX_AGE applies as before.
    _pool_min = env_int("MES_DB_POOL_MIN_SIZE", 1)
    _pool_max = env_int("MES_DB_POOL_MAX_SIZE", 4, minimum=1)
    if _pool_min > _pool_max:
        raise ImproperlyConfigured(
            f"MES_DB_POOL_MIN_SIZE={_pool_min} is more than MES_DB_POOL_MAX_SIZE={_pool_max}."
        )
    if _db["CONN_MAX_AGE"] != 0 and os.environ.get("DB_CONN_MAX_AGE", "").strip():
        # Django refuses persistent connections beside a pool; say so now, not at the
        # first query.
        raise ImproperlyConfigured(
            "DB_CONN_MAX_AGE keeps connections outside the pool: leave it unset with the "
            "pool, or turn the pool off with MES_DB_POOL=0."
        )
    _db["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    # The pool hands out a connection only after a round trip on it, so one that PostgreSQL
    # closed (a restart, an idle timeout) is replaced instead of failing the request.
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": _pool_min,
        "max_size": _pool_max,
        "timeout": float(env_int("MES_DB_POOL_TIMEOUT", 10, minimum=1)),
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"TIME_ZONE={TIME_ZONE!r} is not an IANA time zone.") from None
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
WHITENOISE_USE_FINDERS = DEBUG or bool(os.environ.get("MES_PLAIN_STATIC"))
if WHITENOISE_USE_FINDERS:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
if os.environ.get("MES_PLAIN_STATIC"):  # tests render templates without collectstatic
    STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"

# --- Security (production) ------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# A CSRF refusal under /api/ answers the contract's JSON body; elsewhere Django's page.
CSRF_FAILURE_VIEW = "erp_sync.api.exceptions.csrf_failure"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG:
    # Cookies only over HTTPS unless SECURE_COOKIES=0 says the plant serves plain HTTP on
    # its LAN (then a session can be read by anyone on that network: see the README).
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # The image serves plain HTTP: where TLS is used, a proxy in front ends it and says so.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# MES_BEHIND_TLS=1: TLS ends at a reverse proxy in front, which sets X-Forwarded-Proto (and
# strips any the client sent). Then plain HTTP is redirected to HTTPS (but for the health
# and metrics probes, which come from inside) and browsers are told to use HTTPS only.
MES_BEHIND_TLS = env_bool("MES_BEHIND_TLS", False)
if MES_BEHIND_TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("MES_HSTS_SECONDS", 31_536_000, minimum=0)
    # Only when every subdomain is HTTPS too (and the domain is submitted to the browsers'
    # preload list): both are promises a plant's IT makes, so they are theirs to switch on.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MES_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("MES_HSTS_PRELOAD", False)
# Content-Security-Policy (django-csp): scripts and styles only from this server's files, no
# inline script, style or event handler, no frames, forms only to this server. The API's
# Swagger page alone also allows inline styles (Swagger UI sets them; see erp_sync/api/urls).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Cache ----------------------------------------------------------------------------------
# Holds the API's throttle history. Local memory per process by default (the embedded demo);
# with several web processes set MES_CACHE_URL=redis://host:6379/1 so a client's limit holds
# across all of them, not per process.
_cache_url = os.environ.get("MES_CACHE_URL", "").strip()
if _cache_url:
    if not _cache_url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"MES_CACHE_URL={_cache_url!r} is not a Redis URL (redis://, rediss:// or unix://)."
        )
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": "mes",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport under var/, no broker server needed.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip() or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Kombu's transport with whole-message writes: see mes/broker.py.
    CELERY_BROKER_TRANSPORT = "mes.broker:Transport"
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    _control_dir = VAR_DIR / "celery" / "control"
    for _dir in (_queue_dir, _processed_dir, _control_dir):
        _dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(_control_dir),
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("MES_CELERY_QUEUE", "").strip() or "celery"
CELERY_BEAT_SCHEDULE: dict = {}
# Beat's own bookkeeping goes under MES_VAR_DIR, not into the working directory (which the
# image's user may not write). Two beats on one host need a file each (--schedule).
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat sends tasks only while it holds a lease in the database (mes/beat.py), so a second
# beat stands by instead of sending every task twice, and takes over within
# MES_BEAT_LEASE_SECONDS (and a third) when the first dies. `celery beat` and
# `worker --beat` both use it.
CELERY_BEAT_SCHEDULER = "mes.beat:LeasedScheduler"
MES_BEAT_LEASE_SECONDS = env_int("MES_BEAT_LEASE_SECONDS", 3, minimum=2)

# --- PLC polling (shopfloor.plc) -------------------------------------------------------------
# Poll groups map to Celery queues; the beat schedule entries for polling are added below.
# Each group is polled by one cycle task per beat on queue ``plc.<group>``; give every such
# queue one worker process (``-Q plc.<group> --concurrency 1``) so connections are reused,
# or two on different hosts for fail-over: only the worker holding the group's lease polls
# (shopfloor/plc/window.py), and a killed one's lease runs out within two beats.
MES_PLC_GROUPS = env_list("MES_PLC_GROUPS", ["default"])
_plc_group_chars = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
for _group in MES_PLC_GROUPS:
    if not (len(_group) <= 32 and set(_group) <= _plc_group_chars and _group[0] not in "_-"):
        raise ImproperlyConfigured(f"MES_PLC_GROUPS: {_group!r} is not a valid group name.")
MES_PLC_BEAT_MS = env_int("MES_PLC_BEAT_MS", 1000, minimum=100)  # how often a cycle starts
MES_PLC_WAIT_MS = env_int("MES_PLC_WAIT_MS", 500, minimum=20)  # longest wait for answers
MES_PLC_OFFLINE_AFTER = env_int("MES_PLC_OFFLINE_AFTER", 3, minimum=1)  # failed polls
MES_PLC_BACKOFF_MAX_SECONDS = env_int("MES_PLC_BACKOFF_MAX_SECONDS", 30, minimum=1)
MES_PLC_IDLE_DOWNTIME_SECONDS = env_int("MES_PLC_IDLE_DOWNTIME_SECONDS", 120, minimum=1)
MES_PLC_REPORT_SECONDS = env_int("MES_PLC_REPORT_SECONDS", 5, minimum=1)  # booking batch
MES_PLC_MAX_PARTS_PER_SECOND = env_int("MES_PLC_MAX_PARTS_PER_SECOND", 50, minimum=1)
CELERY_BEAT_SCHEDULE.update(
    {
        f"plc-poll-{_group}": {
            "task": "shopfloor.tasks.poll_plc_group",
            "schedule": MES_PLC_BEAT_MS / 1000,
            "args": [_group],
            # A cycle nobody picked up within two beats is stale: the next one is coming.
            "options": {"queue": Queues.plc(_group), "expires": 2 * MES_PLC_BEAT_MS / 1000},
        }
        for _group in MES_PLC_GROUPS
    }
)
CELERY_BEAT_SCHEDULE.update(
    {
        "plc-book-counts": {
            "task": "shopfloor.tasks.book_plc_counts",
            "schedule": MES_PLC_REPORT_SECONDS,
            "options": {"expires": MES_PLC_REPORT_SECONDS},
        }
    }
)
# Queues by urgency (see mes.queues.Queues): polling on plc.<group>, ERP delivery on
# <default>.erp, re-planning on <default>.schedule, booking on <default>.booking, the rest on
# <default>; each taken by its own worker (Procfile), so a long re-plan never delays delivery
# or polling. A worker started without -Q takes them all.
MES_QUEUES = Queues(CELERY_TASK_DEFAULT_QUEUE, tuple(MES_PLC_GROUPS))
CELERY_TASK_ROUTES = MES_QUEUES.routes()
CELERY_TASK_QUEUES = [
    KombuQueue(name, KombuExchange(name), routing_key=name) for name in MES_QUEUES.names()
]
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The filesystem transport looks for messages once a second by default, which would
    # add up to a second to every poll cycle of the demo.
    CELERY_BROKER_TRANSPORT_OPTIONS.setdefault("polling_interval", 0.1)

# --- REST framework -------------------------------------------------------------------------
# Requests per client: <number>/<s|sec|m|min|h|hour|d|day>, as DRF's throttles read it.
MES_API_THROTTLE_RATE = os.environ.get("MES_API_THROTTLE_RATE", "").strip() or "6000/min"
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", MES_API_THROTTLE_RATE):
    raise ImproperlyConfigured(
        f"MES_API_THROTTLE_RATE={MES_API_THROTTLE_RATE!r} is not a rate such as 6000/min "
        "(a number, a slash, and s, min, hour or day)."
    )
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["erp_sync.api.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["erp_sync.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "erp_sync.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {
        "api_client": MES_API_THROTTLE_RATE,
    },
}
# How long a process trusts a token it has looked up (revocation takes effect within this).
MES_API_TOKEN_CACHE_SECONDS = env_int("MES_API_TOKEN_CACHE_SECONDS", 10, minimum=0)
SPECTACULAR_SETTINGS = {
    "TITLE": "MES API",
    "DESCRIPTION": (
        "The v1 contract between ERPs and the MES: work orders, production confirmations, "
        "machines and master data. Authenticate with `Authorization: Bearer <token>` "
        "(`python manage.py create_api_client NAME --scope erp|integrator`). Every 4xx body "
        'is `{"code", "detail", "errors"}`. The events the MES POSTs to the ERP are under '
        "`webhooks`. Enumerations may gain values within v1: accept values you do not know. "
        "A machine PUT that leaves `connection` out keeps the PLC connection (`null` removes "
        "it), and inside `connection` what is left out of `registers`, `profile`, `group` and "
        "`enabled` stays as it is. Elsewhere a PUT replaces the resource: a field left out "
        "takes its documented default. A request body holds only the documented properties: "
        "an unknown one (a misspelt field, say) is a 400 `invalid` that names it, and "
        "nothing changes. A body over the size limit is a 413 `payload_too_large`."
    ),
    # Raised whenever the document changes (additively within v1): 1.1.0 added machines'
    # connection, the webhooks, declared limits and the error code enumeration; 1.2.0 closed
    # the request bodies (unknown properties refused) and added 413 payload_too_large.
    "VERSION": "1.2.0",
    # Nothing of the API is public: the document and its Swagger page answer API clients
    # (any scope) and signed-in planners, supervisors and admins.
    "SERVE_PERMISSIONS": ["erp_sync.auth.CanReadSchema"],
    "SERVE_AUTHENTICATION": [
        "erp_sync.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # 3.1: null is a type (3.0's allOf + nullable rejects real nulls in strict tools), and
    # the outbound events are described as webhooks.
    "OAS_VERSION": "3.1.0",
    "SERVERS": [{"url": "/", "description": "This MES (the host that serves this schema)"}],
    "WEBHOOKS": [
        f"erp_sync.api.schema.{name}_WEBHOOK"
        for name in (
            "WORK_ORDER_UPDATED",
            "CONFIRMATION_CREATED",
            "SCHEDULE_CHANGED",
            "QUALITY_NONCONFORMANCE",
        )
    ],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "erp_sync.api.schema.postprocess",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "WorkOrderStatusEnum": "mes.choices.WorkOrderStatus.values",
        "OperationStatusEnum": "mes.choices.OperationStatus.values",
        "MachineStateEnum": "mes.choices.MachineState.values",
        "CheckKindEnum": "mes.quality.choices.CheckKind.values",
        "ReactionEnum": "mes.quality.choices.Reaction.values",
        "DispositionEnum": "mes.quality.choices.Disposition.values",
        "NonconformanceStatusEnum": "mes.quality.choices.NonconformanceStatus.values",
        "VerdictEnum": "mes.quality.choices.Verdict.values",
        "ErrorCodeEnum": "erp_sync.api.serializers.ERROR_CODES",
    },
}

# --- Logging --------------------------------------------------------------------------------
# JSON lines (one object per record: time, level, logger, message, request_id and any extra
# fields such as security_event) unless MES_LOG_FORMAT=plain; the demo (DEBUG) reads plain.
MES_LOG_FORMAT = os.environ.get("MES_LOG_FORMAT", "").strip().lower() or (
    "plain" if DEBUG else "json"
)
if MES_LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"MES_LOG_FORMAT={MES_LOG_FORMAT!r}: use json or plain.")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r}: use DEBUG, INFO, WARNING or ERROR.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "mes.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": json_formatter("request_id"),
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": MES_LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
# Prometheus metrics at /metrics (mes.metrics): with a token, scrapers send it as a bearer
# token; without one only loopback clients are answered.
MES_METRICS_TOKEN = os.environ.get("MES_METRICS_TOKEN", "").strip()

# --- Outbound connections (mes/netguard.py) ------------------------------------------------------
# The MES connects where users say: ERP endpoint URLs (webhooks) and PLC hosts. Refused,
# when registered and again at each connection (on every address a name resolves to):
# for ERP endpoints every address that is not public (loopback, private, link-local,
# unspecified, multicast, reserved, shared) and any scheme but http/https; for PLCs, which
# live on private networks, loopback, link-local (169.254.169.254: cloud metadata),
# unspecified, multicast and reserved addresses. MES_OUTBOUND_ALLOWED_HOSTS, comma-separated,
# allows targets anyway: IP addresses (127.0.0.1, ::1), CIDR networks (10.20.0.0/16) and host
# names (erp.plant.local: that name, whatever it resolves to). Default: nothing, or loopback
# (127.0.0.0/8, ::1, localhost) with DEBUG on, for the demo's ERP simulator and PLCs.
MES_OUTBOUND_ALLOWED_HOSTS = env_list(
    "MES_OUTBOUND_ALLOWED_HOSTS", ["127.0.0.0/8", "::1", "localhost"] if DEBUG else []
)
try:
    netguard.AllowList.parse(MES_OUTBOUND_ALLOWED_HOSTS)
except ValueError as exc:
    raise ImproperlyConfigured(f"MES_OUTBOUND_ALLOWED_HOSTS: {exc}") from None

# --- ERP outbox delivery (erp_sync.delivery) ---------------------------------------------------
MES_OUTBOX_TIMEOUT = env_int("MES_OUTBOX_TIMEOUT", 5, minimum=1)  # seconds per POST
MES_OUTBOX_BACKOFF_BASE = env_int("MES_OUTBOX_BACKOFF_BASE", 2, minimum=1)
MES_OUTBOX_BACKOFF_CAP = env_int("MES_OUTBOX_BACKOFF_CAP", 300, minimum=1)
MES_OUTBOX_MAX_AGE = env_int("MES_OUTBOX_MAX_AGE", 86400, minimum=1)  # then dead letter
MES_OUTBOX_LEASE_SECONDS = env_int("MES_OUTBOX_LEASE_SECONDS", 30, minimum=1)
MES_OUTBOX_PASS_SECONDS = env_int("MES_OUTBOX_PASS_SECONDS", 10, minimum=1)
# POSTs in flight at once per worker (each for a different work order; order per work order
# is kept): a re-plan that moves a thousand orders reaches the ERP in about a second.
MES_OUTBOX_CONCURRENCY = env_int("MES_OUTBOX_CONCURRENCY", 8, minimum=1)
CELERY_BEAT_SCHEDULE["deliver-outbox"] = {
    "task": "erp_sync.tasks.deliver_outbox",
    "schedule": float(env_int("MES_OUTBOX_INTERVAL_SECONDS", 1, minimum=1)),
    "options": {"expires": 5},
}

# --- Live schedule (mes.scheduling) -----------------------------------------------------------
# Beat checks every MES_SCHEDULE_CHECK_SECONDS whether anything changed (an audited change, a
# machine added or deactivated) and re-plans at once; it re-plans anyway every
# MES_SCHEDULE_REFRESH_SECONDS so projections follow the clock.
MES_SCHEDULE_CHECK_SECONDS = env_int("MES_SCHEDULE_CHECK_SECONDS", 1, minimum=1)
MES_SCHEDULE_REFRESH_SECONDS = env_int("MES_SCHEDULE_REFRESH_SECONDS", 60, minimum=1)
# A planned time that moved less than this is not a change (no event, no new version).
MES_SCHEDULE_TOLERANCE_SECONDS = env_int("MES_SCHEDULE_TOLERANCE_SECONDS", 60, minimum=0)
# How long a machine that is down or offline is assumed to stay so.
MES_SCHEDULE_DOWN_ALLOWANCE_MINUTES = env_int("MES_SCHEDULE_DOWN_ALLOWANCE_MINUTES", 30)
# A re-plan writes the orders that moved in chunks of this many, each one transaction that
# holds its orders' locks (a terminal action on one of them waits at most for one chunk).
MES_SCHEDULE_WRITE_CHUNK = env_int("MES_SCHEDULE_WRITE_CHUNK", 250, minimum=1)

# Performance (OEE, mes.performance): a stop shorter than this is a small stop (a speed
# loss), a longer one a breakdown or planned stop; scrap within this many minutes of an
# operation's start is a startup reject.
MES_OEE_SMALL_STOP_SECONDS = env_int("MES_OEE_SMALL_STOP_SECONDS", 120, minimum=1)
MES_OEE_STARTUP_MINUTES = env_int("MES_OEE_STARTUP_MINUTES", 10, minimum=0)

CELERY_BEAT_SCHEDULE["replan-schedule"] = {
    "task": "mes.tasks.replan_schedule",
    "schedule": float(MES_SCHEDULE_CHECK_SECONDS),
    "options": {"expires": 2 * MES_SCHEDULE_CHECK_SECONDS},
}

# --- Operator terminals (shopfloor.terminal) ---------------------------------------------------
MES_TERMINAL_IDLE_SECONDS = env_int("MES_TERMINAL_IDLE_SECONDS", 300, minimum=10)
MES_TERMINAL_MAX_FAILURES = env_int("MES_TERMINAL_MAX_FAILURES", 5, minimum=1)
MES_TERMINAL_LOCKOUT_SECONDS = env_int("MES_TERMINAL_LOCKOUT_SECONDS", 300, minimum=1)
MES_TERMINAL_POLL_MS = env_int("MES_TERMINAL_POLL_MS", 1500, minimum=200)
CELERY_BEAT_SCHEDULE["prune-terminal-records"] = {
    "task": "shopfloor.terminal.tasks.prune_terminal_records",
    "schedule": 3600.0,
}

# --- MES ------------------------------------------------------------------------------------
MES_PAGE_SIZE = env_int("MES_PAGE_SIZE", 50, minimum=1)
