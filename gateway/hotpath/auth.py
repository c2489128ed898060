"""Who is calling: the gateway key (by its hash, from the snapshot cache), its workspace, and the
workspace's provider credentials, decrypted once per process and kept in memory."""

from __future__ import annotations

import time
from typing import Any

from core import vault
from core.keyhash import hash_key, looks_like_key
from gateway.hotpath.http import GatewayError
from gateway.hotpath.providers.base import Credential
from gateway.hotpath.snapshots import SnapshotCache

_MAX_SECRETS = 10_000
# A key sends the same token on every call; its HMAC (two SHA-256 key schedules + the digest,
# ~1 % of a call's CPU under load) is remembered per (token, secret). Bounded: cleared when
# full, so a flood of made-up tokens holds at most this many entries.
_MAX_HASHES = 4_096
_hashes: dict[tuple[str, str], str] = {}


def _key_hash(token: str, secret: str) -> str:
    found = _hashes.get((token, secret))
    if found is None:
        if len(_hashes) >= _MAX_HASHES:
            _hashes.clear()
        found = _hashes[token, secret] = hash_key(token, secret)
    return found


def bearer_token(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization", b"")
    raw = auth[7:] if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
    return raw.decode("latin-1").strip()


async def authenticate(
    snapshots: SnapshotCache, headers: dict[bytes, bytes], *, secret: str
) -> dict[str, Any]:
    """The key's snapshot, or a 401 (missing, malformed, unknown, revoked or expired key)."""
    token = bearer_token(headers)
    if not token:
        raise GatewayError(
            401,
            "Missing API key: send `Authorization: Bearer alph_...` or `x-api-key`.",
            code="missing_api_key",
        )
    if not looks_like_key(token):
        raise GatewayError(401, "Invalid API key.", code="invalid_api_key")
    key = await snapshots.get("gk", _key_hash(token, secret))
    if key is None or key.get("revoked"):
        raise GatewayError(401, "Invalid or revoked API key.", code="invalid_api_key")
    expires = key.get("expires_at")
    if expires is not None and expires <= time.time():
        raise GatewayError(401, "This API key has expired.", code="expired_api_key")
    return key


async def workspace_of(snapshots: SnapshotCache, key: dict[str, Any]) -> dict[str, Any]:
    workspace = await snapshots.get("ws", str(key["workspace_id"]))
    if workspace is None:
        raise GatewayError(401, "Invalid API key.", code="invalid_api_key")
    return workspace


class Credentials:
    """Provider secrets decrypted once per (workspace, credential, ciphertext): a rotated or
    re-encrypted credential has a new ciphertext, so it is decrypted again."""

    def __init__(self) -> None:
        self._secrets: dict[tuple, str] = {}

    def get(self, workspace_id: int, cred: dict[str, Any]) -> Credential:
        return Credential(
            id=cred.get("id") or 0,
            provider=cred["provider"],
            name=cred.get("name") or "",
            base_url=cred.get("base_url"),
            api_version=cred.get("api_version"),
            organization=cred.get("organization"),
            timeout_s=float(cred.get("timeout_s") or 120),
            secret=self._secret(workspace_id, cred),
        )

    def _secret(self, workspace_id: int, cred: dict[str, Any]) -> str:
        enc = cred.get("enc") or {}
        cache_key = (workspace_id, cred.get("id"), enc.get("ciphertext"), enc.get("wrapped_dek"))
        secret = self._secrets.get(cache_key)
        if secret is not None:
            return secret
        try:
            secret = vault.open_secret(workspace_id, enc)
        except vault.VaultError:
            raise GatewayError(
                502,
                f"The provider key `{cred.get('name')}` could not be decrypted; ask a "
                "workspace admin to check the master key.",
                error_type="upstream_error",
                code="credential_unavailable",
            ) from None
        if len(self._secrets) > _MAX_SECRETS:
            self._secrets.clear()
        self._secrets[cache_key] = secret
        return secret
