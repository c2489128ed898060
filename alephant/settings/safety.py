"""What production refuses to start with: checked by `prod.py` on the settings it loaded.

A pure function over the values (not the module) so tests check every refusal by import, and
the message names the variable to set.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

# Public constants anyone can read in this repository or Django's docs: signing with them lets
# a stranger forge sessions, password-reset links and gateway key hashes.
KNOWN_SECRETS = frozenset(
    {
        "insecure-local-development-key-change-me",
        "change-me",
        "changeme",
        "secret",
        "",
    }
)
MIN_SECRET_LENGTH = 50
MIN_KEY_HASH_SECRET_LENGTH = 32


def _weak(secret: str, min_length: int) -> bool:
    return (
        secret.strip() in KNOWN_SECRETS
        or secret.startswith("django-insecure")
        or len(secret) < min_length
        or len(set(secret)) < 5
    )


def production_refusals(*, debug: bool, secret_key: str, key_hash_secret: str) -> list[str]:
    refusals = []
    if debug:
        refusals.append("DJANGO_DEBUG is on: debug pages show settings and code to anyone")
    if _weak(secret_key, MIN_SECRET_LENGTH):
        refusals.append(
            f"DJANGO_SECRET_KEY is missing, a known default or shorter than {MIN_SECRET_LENGTH}"
            " characters (python -c 'import secrets; print(secrets.token_urlsafe(64))')"
        )
    if _weak(key_hash_secret, MIN_KEY_HASH_SECRET_LENGTH):
        refusals.append(
            "ALEPHANT_KEY_HASH_SECRET is missing, a known default or shorter than"
            f" {MIN_KEY_HASH_SECRET_LENGTH} characters (it keys the gateway-key hashes)"
        )
    return refusals


def refuse_unsafe_production(*, debug: bool, secret_key: str, key_hash_secret: str) -> None:
    refusals = production_refusals(
        debug=debug, secret_key=secret_key, key_hash_secret=key_hash_secret
    )
    if refusals:
        raise ImproperlyConfigured(
            "Refusing to start in production (README 'Deploying to production'):\n- "
            + "\n- ".join(refusals)
        )
