"""The settings modules: tests get theirs once at load (no patching), dev and prod import cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings


def test_test_settings_are_set_once_at_load():
    db = os.environ.get("ALEPHANT_TEST_REDIS_DB", "15")
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "alephant.settings.test"
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert settings.REDIS_URL.endswith(f"/{db}")
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert settings.CELERY_BROKER_URL.endswith(f"/{db}")
    # The Django-free gateway reads REDIS_URL from the environment, here and in child processes.
    assert os.environ["REDIS_URL"] == settings.REDIS_URL


@pytest.mark.parametrize("module", ["alephant.settings.dev", "alephant.settings.prod"])
def test_other_settings_modules_load(module):
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.PASSWORD_HASHERS[0])"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": module}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "MD5" not in out.stdout  # the fast hasher is for tests only
