"""The settings modules: tests get theirs once at load (no patching), dev and prod import cleanly."""

from __future__ import annotations

import importlib
import os

import pytest
from django.conf import settings

from alephant.settings import base


def test_test_settings_are_set_once_at_load():
    db = os.environ.get("ALEPHANT_TEST_REDIS_DB", "15")
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "alephant.settings.test"
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert settings.REDIS_URL.endswith(f"/{db}")
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert settings.CELERY_BROKER_URL.endswith(f"/{db}")
    # The Django-free gateway reads REDIS_URL from the environment, here and in child processes.
    assert os.environ["REDIS_URL"] == settings.REDIS_URL


# prod refuses this environment (DEBUG on in .env): tests/security/test_production.py starts it
# in a subprocess with a production environment.
@pytest.mark.parametrize("module", ["alephant.settings.dev"])
def test_other_settings_modules_keep_the_defaults(module):
    # Importing a settings module only reads the environment; Django keeps the test settings.
    values = importlib.import_module(module)
    assert not hasattr(values, "PASSWORD_HASHERS")  # Django's default (PBKDF2): tests only go fast
    assert values.REDIS_URL == base.REDIS_URL and values.CACHES == base.CACHES
    assert values.INSTALLED_APPS == base.INSTALLED_APPS
