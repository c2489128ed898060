"""pytest (`[tool.pytest.ini_options]`) and the server processes tests start: set once here,
never patched after load.

* A fast password hasher: the standard cast hashes six passwords per test.
* This run's own Redis logical database (`ALEPHANT_TEST_REDIS_DB`, default 15) for Redis, the
  Django cache and the Celery broker, so tests never touch the development db 0 and parallel
  runs on one Redis stay apart. The environment is updated too: the Django-free gateway reads
  REDIS_URL from it, in this process and in the processes tests start.
"""

import os
import re

from alephant.env import env_str, load_dotenv

load_dotenv()
# Provider keys in tests point at the simulator on 127.0.0.1.
os.environ.setdefault("ALEPHANT_ALLOW_PRIVATE_UPSTREAMS", "1")
# Most tests sign strangers up freely; tests/security checks invite and closed explicitly.
os.environ.setdefault("ALEPHANT_SIGNUP", "open")
os.environ.setdefault("ALEPHANT_EMAIL_VERIFICATION", "optional")

from alephant.settings.base import *  # noqa: E402,F403
from alephant.settings.base import CACHES, CELERY_BROKER_URL, REDIS_URL  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_TEST_REDIS_DB = env_str("ALEPHANT_TEST_REDIS_DB", "15")
_TEST_REDIS_URL = re.sub(r"/\d*$", "", REDIS_URL.rstrip("/")) + f"/{_TEST_REDIS_DB}"
if CELERY_BROKER_URL == REDIS_URL:  # a broker set apart on purpose is left alone
    CELERY_BROKER_URL = _TEST_REDIS_URL
REDIS_URL = _TEST_REDIS_URL
os.environ["REDIS_URL"] = REDIS_URL
CACHES = {**CACHES, "default": {**CACHES["default"], "LOCATION": REDIS_URL}}
