"""Production is safe by default; error pages never show credentials, in any mode.

An operator who forgets a variable gets a refusal naming it, not a silently public constant. The
refusals are checked where they happen: a real `manage.py` process with a production environment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

from alephant.errorfilter import CredentialSafeExceptionReporterFilter
from alephant.settings.safety import production_refusals
from core.logmask import SecretMaskingFilter
from devtools.run import mode_banner
from tests.security.boom_urls import OWNER_URL

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "k3P9v" * 12  # 60 characters, 5 distinct
STRONG_HASH_SECRET = "Hs7-q" * 8
# Variables of the developer's shell and .env that must not leak into the "production" process.
_DROP = ("DJANGO_", "ALEPHANT_", "DATABASE_", "REDIS_URL", "CELERY_")


def _prod_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env.update(
        ALEPHANT_ENV_FILE="/nonexistent/.env",  # not the developer's .env (DEBUG=1)
        DJANGO_SETTINGS_MODULE="alephant.settings.prod",
        DJANGO_SECRET_KEY=STRONG_SECRET,
        ALEPHANT_KEY_HASH_SECRET=STRONG_HASH_SECRET,
        ALEPHANT_MASTER_KEY="m" * 20 + "aster-key-material",
        ALEPHANT_SITE_URL="https://alephant.example.com",
        DATABASE_URL="postgres://app:app-pw@127.0.0.1:1/alephant",
    )
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_prod_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_clean_in_production():
    done = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_refuses_debug_and_missing_secrets_in_one_message():
    done = _manage("check", DJANGO_DEBUG="1", DJANGO_SECRET_KEY="", ALEPHANT_KEY_HASH_SECRET="")
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    for name in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY", "ALEPHANT_KEY_HASH_SECRET"):
        assert name in done.stderr


def test_alephant_env_production_makes_the_default_module_refuse():
    done = _manage(
        "check",
        DJANGO_SETTINGS_MODULE="alephant.settings.dev",
        ALEPHANT_ENV="production",
        DJANGO_SECRET_KEY="insecure-local-development-key-change-me",
    )
    assert done.returncode != 0 and "DJANGO_SECRET_KEY" in done.stderr


@pytest.mark.parametrize(
    "secret_key",
    [
        "",
        "insecure-local-development-key-change-me",
        "django-insecure-" + "x" * 50,
        "short",
        "a" * 64,
    ],
)
def test_known_short_or_missing_secret_keys_are_refused(secret_key):
    refusals = production_refusals(
        debug=False, secret_key=secret_key, key_hash_secret=STRONG_HASH_SECRET
    )
    assert [r for r in refusals if r.startswith("DJANGO_SECRET_KEY")]


@pytest.mark.parametrize(
    "key_hash_secret", ["", "insecure-local-development-key-change-me", "x" * 8]
)
def test_missing_or_known_key_hash_secret_is_refused(key_hash_secret):
    refusals = production_refusals(
        debug=False, secret_key=STRONG_SECRET, key_hash_secret=key_hash_secret
    )
    assert [r for r in refusals if r.startswith("ALEPHANT_KEY_HASH_SECRET")]
    assert not production_refusals(
        debug=False, secret_key=STRONG_SECRET, key_hash_secret=STRONG_HASH_SECRET
    )


def _prod_settings(**env: str) -> dict[str, str]:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_SSL_REDIRECT, s.DEBUG, s.ALLOWED_HOSTS[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_prod_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    keys = ["hsts", "session_secure", "csrf_secure", "ssl_redirect", "debug", "host"]
    return dict(zip(keys, done.stdout.split(), strict=True))


def test_hsts_and_secure_cookies_follow_an_https_site_url():
    https = _prod_settings()
    assert https["hsts"] == "31536000" and https["ssl_redirect"] == "True"
    assert https["session_secure"] == https["csrf_secure"] == "True"
    assert https["debug"] == "False" and https["host"] == "alephant.example.com"
    plain = _prod_settings(ALEPHANT_SITE_URL="http://alephant.internal")
    assert plain["hsts"] == "0"  # an http site cannot promise https
    assert plain["session_secure"] == "True"  # still secure unless turned off on purpose


# --- error pages and logs ----------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(
    DEBUG=True,
    ROOT_URLCONF="tests.security.boom_urls",
    DATABASE_OWNER_URL=OWNER_URL,
    SENTRY_DSN="https://public:dsn-pw-LEAK-5678@sentry.example.com/1",
    BROKERS={"celery": ["redis://:redis-pw-LEAK-9999@127.0.0.1:6379/0"]},
)
def test_a_500_with_debug_on_shows_no_credential_to_the_signed_in_user(cast):
    client = Client(raise_request_exception=False)
    client.force_login(cast.member.user)
    response = client.post("/boom/", {"secret": "sk-typed-into-a-form-LEAK", "note": OWNER_URL})
    assert response.status_code == 500
    page = response.content.decode()
    assert "Traceback" in page or "RuntimeError" in page  # it is the debug page
    for leak in ("owner-pw-LEAK-1234", "dsn-pw-LEAK-5678", "redis-pw-LEAK-9999", "LEAK"):
        assert leak not in page
    real_owner = settings.DATABASES["default"].get("PASSWORD") or ""
    assert not real_owner or f":{real_owner}@" not in page


def test_the_filter_masks_every_connection_url_setting():
    safe = CredentialSafeExceptionReporterFilter().get_safe_settings()
    text = repr(safe)
    for name in ("DATABASE_OWNER_URL", "DATABASE_APP_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        assert safe[name] == CredentialSafeExceptionReporterFilter.cleansed_substitute
    password = settings.DATABASES["default"].get("PASSWORD")
    assert not password or f":{password}@" not in text


def test_every_logging_handler_masks_secrets():
    # The handlers our LOGGING configured, looked up by name (other tests may attach their own
    # handlers to loggers at run time; those are not the deployment's).
    configured = settings.LOGGING["handlers"]
    assert configured
    for name, config in configured.items():
        assert "mask_secrets" in config.get("filters", []), name
        [handler] = [h for h in logging.getLogger().handlers if h.name == name]
        assert any(isinstance(f, SecretMaskingFilter) for f in handler.filters), name
    # Django's own loggers keep no unmasked handlers of their own: they propagate to the root.
    for name in ("django", "django.server"):
        logger = logging.getLogger(name)
        assert logger.propagate
        assert all(
            any(isinstance(f, SecretMaskingFilter) for f in h.filters)
            for h in logger.handlers
            if h.name in configured or type(h).__module__.startswith("django")
        ), name


@pytest.mark.django_db
def test_pages_carry_csp_referrer_policy_and_no_inline_script(client, cast):
    client.force_login(cast.owner.user)
    for url in ("/", "/manage/gateway-keys/", "/manage/provider-keys/", "/accounts/login/"):
        response = client.get(url)
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp
        assert "frame-ancestors 'none'" in csp
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        page = response.content.decode()
        assert " onsubmit=" not in page and " onclick=" not in page
        assert "<script>" not in page  # inline scripts would be blocked by the policy


def test_a_logged_traceback_masks_the_url_in_the_exception():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise RuntimeError(f"could not connect to {OWNER_URL}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    SecretMaskingFilter().filter(record)
    line = logging.Formatter().format(record)
    assert "owner-pw-LEAK-1234" not in line and "alephant_owner:[masked]@" in line


def test_make_run_says_it_is_development_mode():
    dev = mode_banner({"DJANGO_DEBUG": "1", "ALEPHANT_ALLOW_PRIVATE_UPSTREAMS": "1"})
    assert "DEVELOPMENT MODE" in dev and "DEBUG on" in dev and "Not for production" in dev
    assert "DEVELOPMENT" not in mode_banner({"ALEPHANT_ENV": "production"})
    assert "DEVELOPMENT" not in mode_banner({"DJANGO_SETTINGS_MODULE": "alephant.settings.prod"})
