"""Settings shared by every environment; every knob from the environment with a safe local default.

`dev.py`, `test.py` and `prod.py` import this and override what differs (cookiecutter-django's
layout). Every variable read here is documented in README.md ("Configuration").
"""

from __future__ import annotations

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from alephant.env import BASE_DIR, env_bool, env_int, env_list, env_str, load_dotenv
from alephant.headers import DEFAULT_CSP

load_dotenv()

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "insecure-local-development-key-change-me")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("ALEPHANT_SITE_URL", "http://127.0.0.1:8000")
# Approve/deny links in budget-request notifications stop working after this many seconds.
ALEPHANT_REQUEST_LINK_MAX_AGE_S = env_int("ALEPHANT_REQUEST_LINK_MAX_AGE_S", 3 * 86400)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "workspaces",
    "billing",
    "gateway",
    "attribution",
    "efficiency",
    "reconciliation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "alephant.headers.ContentSecurityPolicyMiddleware",
    "alephant.requestguard.RejectNullBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # Last: it wraps the view in one transaction with the workspace scope set.
    "workspaces.middleware.WorkspaceScopeMiddleware",
]

ROOT_URLCONF = "alephant.urls"
WSGI_APPLICATION = "alephant.wsgi.application"
ASGI_APPLICATION = "alephant.asgi.application"

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
                "workspaces.context_processors.workspace",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL is the *app* role (not owner, not superuser, no BYPASSRLS): row-level security
# applies to every query the app makes. DATABASE_OWNER_URL is the role that owns the tables and
# runs migrations; ALEPHANT_DB_AS_OWNER=1 makes this process connect as it (used by `migrate`).
_LOCAL_DB = "postgres://alephant_app:alephant_app@127.0.0.1:54329/alephant"
DATABASE_APP_URL = env_str("DATABASE_URL", _LOCAL_DB)
DATABASE_OWNER_URL = env_str("DATABASE_OWNER_URL", DATABASE_APP_URL)
DB_AS_OWNER = env_bool("ALEPHANT_DB_AS_OWNER", False)


def _database(url: str) -> dict:
    max_age = env_int("DATABASE_CONN_MAX_AGE", 60)
    config: dict = dj_database_url.parse(url, conn_max_age=max_age)  # type: ignore[assignment]
    config["CONN_HEALTH_CHECKS"] = True
    config["TEST"] = {"NAME": env_str("ALEPHANT_TEST_DB", "test_alephant")}
    return config


DATABASES = {"default": _database(DATABASE_OWNER_URL if DB_AS_OWNER else DATABASE_APP_URL)}

# DATABASE_REPLICA_URL: a streaming (hot standby) replica of the same cluster, as the app role.
# Dashboards, exports and the usage APIs read from it (alephant/dbrouter.py); writes, log-in and
# anything that must see its own write use the primary. Tests mirror it onto the test database.
# Migrations (ALEPHANT_DB_AS_OWNER) never touch it.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
# A replica that cannot be reached is skipped (reads from the primary) for this many seconds.
ALEPHANT_DB_REPLICA_RETRY_S = env_int("ALEPHANT_DB_REPLICA_RETRY_S", 10)
DATABASE_ROUTERS: list[str] = []
if DATABASE_REPLICA_URL and not DB_AS_OWNER:
    DATABASES["replica"] = _database(DATABASE_REPLICA_URL)
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    # A dead replica host must not hold a dashboard for the OS's connect timeout.
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("ALEPHANT_DB_REPLICA_CONNECT_TIMEOUT_S", 2)
    )
    DATABASE_ROUTERS = ["alephant.dbrouter.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "workspaces.User"

# --- Redis and Celery -----------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:63799/0")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {}
# Attribution rollups: incremental every minute, a whole rebuild of the last 2 days nightly.
CELERY_BEAT_SCHEDULE["attribution-rollup"] = {
    "task": "attribution.rollup_all",
    "schedule": env_int("ALEPHANT_ROLLUP_INTERVAL_S", 60),
}
CELERY_BEAT_SCHEDULE["attribution-reconcile"] = {
    "task": "attribution.reconcile_all",
    "schedule": env_int("ALEPHANT_ROLLUP_RECONCILE_INTERVAL_S", 24 * 3600),
}

# Budget alerts: record the gateway's crossing events every few seconds; forecast hourly.
CELERY_BEAT_SCHEDULE["billing-alerts-drain"] = {
    "task": "billing.alerts_drain",
    "schedule": env_int("ALEPHANT_ALERTS_DRAIN_INTERVAL_S", 5),
}
CELERY_BEAT_SCHEDULE["billing-budgets-forecast"] = {
    "task": "billing.budgets_forecast_all",
    "schedule": env_int("ALEPHANT_FORECAST_INTERVAL_S", 3600),
}
CELERY_BEAT_SCHEDULE["billing-counters-reconcile"] = {
    "task": "billing.counters_reconcile_all",
    "schedule": env_int("ALEPHANT_COUNTERS_RECONCILE_INTERVAL_S", 600),
}
# Budget increase requests: expire pending ones past their end, tidy lapsed increases.
CELERY_BEAT_SCHEDULE["billing-budget-requests-expire"] = {
    "task": "billing.budget_requests_expire_all",
    "schedule": env_int("ALEPHANT_BUDGET_REQUESTS_EXPIRE_INTERVAL_S", 60),
}
# Reconciliation with the providers' bills: re-pull the last N days once a day (late data).
CELERY_BEAT_SCHEDULE["reconciliation-pull"] = {
    "task": "reconciliation.pull_all",
    "schedule": env_int("ALEPHANT_RECONCILIATION_INTERVAL_S", 24 * 3600),
}
# Ledger partitions (billing/services/partitions.py): keep the next months' partitions created,
# then archive (gzip CSV) and drop months past the retention; 0 keeps the ledger forever.
CELERY_BEAT_SCHEDULE["billing-ledger-partitions"] = {
    "task": "billing.ledger_partitions_maintain",
    "schedule": env_int("ALEPHANT_LEDGER_PARTITIONS_INTERVAL_S", 3600),
}
ALEPHANT_LEDGER_RETENTION_MONTHS = env_int("ALEPHANT_LEDGER_RETENTION_MONTHS", 0)
ALEPHANT_LEDGER_ARCHIVE_DIR = env_str(
    "ALEPHANT_LEDGER_ARCHIVE_DIR", str(BASE_DIR / ".run" / "ledger-archive")
)
# The monthly FOCUS file (last month, per workspace) goes here; empty: no file is written.
ALEPHANT_FOCUS_EXPORT_DIR = env_str("ALEPHANT_FOCUS_EXPORT_DIR", "")
ALEPHANT_ALERT_RETRY_BASE_S = env_int("ALEPHANT_ALERT_RETRY_BASE_S", 2)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # A plain Redis (Django's cache client cannot follow cluster redirects): on a Redis
        # Cluster set it, like CELERY_BROKER_URL, to a separate single server.
        "LOCATION": env_str("ALEPHANT_CACHE_URL", REDIS_URL),
        "KEY_PREFIX": "alephant:cache",
    }
}

# --- Auth (django-allauth) ------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_ADAPTER = "workspaces.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_GET = False
# Per address first: allauth stops at the first exhausted rate, so a locked-out address no
# longer spends its IP's allowance and one user's failures never lock out a colleague behind the
# same NAT. The per-IP rate only brakes credential stuffing across many addresses.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("ALEPHANT_LOGIN_RATE_LIMIT", "5/5m/key,30/m/ip"),
}
# Sign-up and password reset answer the same whether or not an address has an account.
ACCOUNT_PREVENT_ENUMERATION = True
# Who may create an account: open (anyone), invite (the first account on an empty instance, then
# invitation links only) or closed (nobody through the web). workspaces/adapters.py enforces it.
ALEPHANT_SIGNUP = env_str("ALEPHANT_SIGNUP", "invite")
if ALEPHANT_SIGNUP not in {"open", "invite", "closed"}:
    raise ImproperlyConfigured(f"ALEPHANT_SIGNUP is open, invite or closed: {ALEPHANT_SIGNUP!r}")
# Open sign-up can only hide which addresses exist if every sign-up ends on "check your email"
# (allauth mails the owner of a taken address instead of saying so): verification is mandatory
# there. With invite/closed a stranger reaches no sign-up form to probe with.
ACCOUNT_EMAIL_VERIFICATION = env_str(
    "ALEPHANT_EMAIL_VERIFICATION", "mandatory" if ALEPHANT_SIGNUP == "open" else "optional"
)
MFA_ADAPTER = "workspaces.adapters.MFAAdapter"  # TOTP seeds encrypted under the master key
ACCOUNT_SIGNUP_FORM_CLASS = "workspaces.forms.SignupExtraForm"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Alephant"
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"
INVITATION_TTL_HOURS = env_int("ALEPHANT_INVITATION_TTL_HOURS", 72)

# --- Email ----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
if env_str("EMAIL_HOST"):
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Alephant <alephant@localhost>")

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "workspaces.authentication.APITokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [],
    # One error body shape everywhere: {"error": {"type", "message", "fields"?}}.
    "EXCEPTION_HANDLER": "workspaces.api_base.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Alephant API",
    "DESCRIPTION": "Provision gateway keys, provider keys, budgets and read usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AlertChannelKindEnum": "billing.models.alerts.ChannelKind",
        "AlertKindEnum": "billing.models.alerts.AlertKind",
        "TokenScopeEnum": "workspaces.models.TokenScope",
        "ProviderEnum": "gateway.models.Provider",
        "AdminProviderEnum": "reconciliation.models.AdminProvider",
        "BudgetPeriodEnum": "billing.models.budgets.Period",
        "GradePeriodEnum": "efficiency.models.Period",
        "CacheScopeEnum": "efficiency.models.CacheScope",
    },
}

# --- i18n, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

# --- Alephant -------------------------------------------------------------------------------
ALEPHANT_ALLOW_PRIVATE_UPSTREAMS = env_bool("ALEPHANT_ALLOW_PRIVATE_UPSTREAMS", DEBUG)
ALEPHANT_MASTER_KEY = env_str("ALEPHANT_MASTER_KEY")
ALEPHANT_MASTER_KEY_FILE = env_str("ALEPHANT_MASTER_KEY_FILE")
ALEPHANT_KEY_HASH_SECRET = env_str("ALEPHANT_KEY_HASH_SECRET", SECRET_KEY)

# Efficiency grades: every `ALEPHANT_EFF_*` threshold (defaults and meaning in efficiency/conf.py
# and README "Efficiency grades"); the response cache TTL for `Alephant-Cache: on`.
import os as _os  # noqa: E402

from celery.schedules import crontab  # noqa: E402

for _name, _value in _os.environ.items():
    if _name.startswith("ALEPHANT_EFF_"):
        globals()[_name] = _value
ALEPHANT_CACHE_TTL_SECONDS = env_int("ALEPHANT_CACHE_TTL_SECONDS", 3600)
CELERY_BEAT_SCHEDULE["efficiency-recompute"] = {
    "task": "efficiency.tasks.efficiency_recompute_all",
    "schedule": 3600.0,
}
CELERY_BEAT_SCHEDULE["efficiency-weekly-digest"] = {
    "task": "efficiency.tasks.efficiency_weekly_digest",
    "schedule": crontab(minute=0, hour=7, day_of_week="mon"),
}
# Spend reports per department: hourly, so each workspace's week/month is reported soon after it
# closes in its own time zone; one row per department and period keeps each sent once.
CELERY_BEAT_SCHEDULE["billing-spend-reports"] = {
    "task": "billing.spend_reports_all",
    "schedule": crontab(minute=15),
}

# Every handler masks credentials (Slack URLs, signing keys, tokens, URL passwords).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_secrets": {"()": "core.logmask.SecretMaskingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["mask_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Django's own handlers (console when DEBUG, mail_admins, runserver's) carry no mask: its
    # loggers propagate to the root handler instead.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}

# --- Security headers and error reports ----------------------------------------------------
# Debug pages and error mails: settings named like URL/DSN/OWNER hidden too, and a password in
# any `scheme://user:password@` value masked (alephant/errorfilter.py), in every mode.
DEFAULT_EXCEPTION_REPORTER_FILTER = "alephant.errorfilter.CredentialSafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "alephant.errorfilter.CredentialSafeExceptionReporter"
ALEPHANT_CSP = env_str("ALEPHANT_CSP", DEFAULT_CSP)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Read here, not only in prod.py: a deployment that leaves DJANGO_SETTINGS_MODULE at its default
# keeps the cookie flags it sets, as before the split.
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)

# The monthly FOCUS file (reconciliation.tasks): on the 1st, for the month just ended.
CELERY_BEAT_SCHEDULE["reconciliation-focus-files"] = {
    "task": "reconciliation.focus_files_all",
    "schedule": crontab(minute=30, hour=2, day_of_month=1),
}
