"""Production: set DJANGO_SETTINGS_MODULE=alephant.settings.prod.

Today it is `base` unchanged: production is configured by the environment (DJANGO_SECRET_KEY,
DJANGO_ALLOWED_HOSTS, DJANGO_SECURE_COOKIES, ...; README "Configuration"). Rules that only
production enforces belong here.
"""

from alephant.settings.base import *  # noqa: F403
