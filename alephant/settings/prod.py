"""Production: DJANGO_SETTINGS_MODULE=alephant.settings.prod, or ALEPHANT_ENV=production with the
default module (dev.py hands over to this one).

Refuses to start with DEBUG on, a missing/known DJANGO_SECRET_KEY or a missing
ALEPHANT_KEY_HASH_SECRET (alephant/settings/safety.py); sets what `manage.py check --deploy`
asks for. Every variable is in README "Deploying to production".
"""

from urllib.parse import urlsplit

from alephant.env import env_bool, env_int, env_list, env_str
from alephant.settings.base import *  # noqa: F403
from alephant.settings.base import DEBUG, SECRET_KEY, SITE_URL
from alephant.settings.safety import refuse_unsafe_production

# The key-hash secret must be set on purpose: base falls back to SECRET_KEY for local runs.
# (Upgrading a deployment that relied on that fallback: set it to the old DJANGO_SECRET_KEY, or
# every issued gateway key stops matching.)
ALEPHANT_KEY_HASH_SECRET = env_str("ALEPHANT_KEY_HASH_SECRET")
refuse_unsafe_production(
    debug=DEBUG, secret_key=SECRET_KEY, key_hash_secret=ALEPHANT_KEY_HASH_SECRET
)

_SITE = urlsplit(SITE_URL)
_HTTPS = _SITE.scheme == "https"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [_SITE.hostname or "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [f"{_SITE.scheme}://{_SITE.netloc}"])

# Cookies travel only over TLS (turn off only for a plain-http trial behind a private network).
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
SESSION_COOKIE_HTTPONLY = True

# HSTS and the https redirect follow the public site URL: an http site cannot promise https.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000) if _HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", _HTTPS)
# Load balancers probe over plain http inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    # Only behind a proxy that overwrites the header; otherwise a client could claim https.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Preloading is a commitment of the whole domain, made by its owner (DJANGO_HSTS_PRELOAD=1),
# not a default: its deploy-check warning is the only one silenced.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
