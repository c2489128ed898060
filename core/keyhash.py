"""Gateway key format and hashing. Django-free: the hot path uses `hash_key` on every request.

Format: `alph_<8 char prefix>_<40 char secret>` (letters and digits only, so it survives any
header, URL or shell). Stored: `prefix` (`alph_xxxxxxxx`) and
`key_hash = HMAC-SHA256(ALEPHANT_KEY_HASH_SECRET, full_key).hexdigest()`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

KEY_PREFIX = "alph_"
_ALPHABET = string.ascii_letters + string.digits
PREFIX_CHARS = 8
SECRET_CHARS = 40
KEY_LENGTH = len(KEY_PREFIX) + PREFIX_CHARS + 1 + SECRET_CHARS


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def generate_key() -> tuple[str, str]:
    """-> (raw key, display prefix). The raw key is shown once and never stored."""
    prefix = KEY_PREFIX + _random(PREFIX_CHARS)
    return f"{prefix}_{_random(SECRET_CHARS)}", prefix


def looks_like_key(raw: str) -> bool:
    return (
        len(raw) == KEY_LENGTH
        and raw.startswith(KEY_PREFIX)
        and raw[len(KEY_PREFIX) + PREFIX_CHARS] == "_"
    )


def prefix_of(raw: str) -> str:
    return raw[: len(KEY_PREFIX) + PREFIX_CHARS]


def hash_key(raw: str, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), raw.encode("utf-8"), hashlib.sha256).hexdigest()
