"""Envelope encryption for provider secrets (BYO keys). Django-free: the hot path imports it.

Layout
* Master key (KEK): 32 bytes derived with HKDF-SHA256 from `ALEPHANT_MASTER_KEY` or the contents of
  `ALEPHANT_MASTER_KEY_FILE`. Its *fingerprint* (`key_version`, 16 hex chars) names it, so a wrapped
  data key says which master key wrapped it. Old master keys stay readable while they are listed in
  `ALEPHANT_MASTER_KEY_PREVIOUS` (comma-separated raw keys) during a rotation.
* Data key (DEK): 32 random bytes per workspace, stored only wrapped:
  `nonce(12) || AES-256-GCM(KEK, DEK, aad="alephant:dek:<workspace_id>")`.
* Secret: `AES-256-GCM(DEK, secret, aad="alephant:secret:<workspace_id>")` with its own nonce.
  The workspace id is bound as associated data at both levels, so a ciphertext (or a whole wrapped
  DEK) copied into another workspace fails to decrypt.

An `enc` dict (what the Redis workspace snapshot carries, see docs/CONTRACTS.md) is
`{"wrapped_dek", "nonce", "ciphertext", "key_version"}`, all base64 strings except the version.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
_HKDF_INFO = b"alephant master key v1"


class VaultError(Exception):
    """A secret could not be sealed or opened. The message never contains key material."""


class MasterKeyMissing(VaultError):
    pass


class MasterKeyMismatch(VaultError):
    """No configured master key matches (wrong key, or a previous key was dropped too early)."""


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64d(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise VaultError("malformed ciphertext encoding") from exc


@dataclass(frozen=True)
class MasterKey:
    key: bytes = b""
    version: str = ""

    def __repr__(self) -> str:  # never print key bytes
        return f"MasterKey(version={self.version!r})"

    @classmethod
    def from_material(cls, material: str | bytes) -> MasterKey:
        raw = material.encode() if isinstance(material, str) else material
        raw = raw.strip()
        if len(raw) < 16:
            raise MasterKeyMissing("master key material is too short (need at least 16 bytes)")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(raw)
        version = hmac.new(key, b"alephant key fingerprint", hashlib.sha256).hexdigest()[:16]
        return cls(key=key, version=version)


@dataclass(frozen=True)
class Keyring:
    current: MasterKey
    previous: tuple[MasterKey, ...] = ()

    def all(self) -> tuple[MasterKey, ...]:
        return (self.current, *self.previous)

    def by_version(self, version: str | None) -> list[MasterKey]:
        """The key named by `version` first; if none matches (old data), every key in order."""
        exact = [k for k in self.all() if k.version == version]
        return exact or list(self.all())


def keyring_from_env(environ: dict[str, str] | None = None) -> Keyring:
    """Read the master keys from the environment (settings load `.env` into it first)."""
    env = os.environ if environ is None else environ
    material = env.get("ALEPHANT_MASTER_KEY", "").strip()
    path = env.get("ALEPHANT_MASTER_KEY_FILE", "").strip()
    if not material and path:
        try:
            material = Path(path).read_text().strip()
        except OSError as exc:
            raise MasterKeyMissing(f"cannot read ALEPHANT_MASTER_KEY_FILE ({path}): {exc}") from exc
    if not material:
        raise MasterKeyMissing(
            "no master key: set ALEPHANT_MASTER_KEY or ALEPHANT_MASTER_KEY_FILE "
            "(`make services` writes one to .run/master.key for local use)"
        )
    current = MasterKey.from_material(material)
    previous = tuple(
        MasterKey.from_material(item)
        for item in env.get("ALEPHANT_MASTER_KEY_PREVIOUS", "").split(",")
        if item.strip()
    )
    return Keyring(current, tuple(k for k in previous if k.version != current.version))


_keyring: Keyring | None = None


def get_keyring() -> Keyring:
    global _keyring
    if _keyring is None:
        _keyring = keyring_from_env()
    return _keyring


def set_keyring(keyring: Keyring | None) -> None:
    """Replace the process keyring (tests, rotation). `None` re-reads the environment next time."""
    global _keyring
    _keyring = keyring
    _unwrap_cached.cache_clear()


def _dek_aad(workspace_id: int) -> bytes:
    return f"alephant:dek:{int(workspace_id)}".encode()


def _secret_aad(workspace_id: int) -> bytes:
    return f"alephant:secret:{int(workspace_id)}".encode()


# --- data keys ------------------------------------------------------------------------------


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_data_key(workspace_id: int, dek: bytes, keyring: Keyring | None = None) -> tuple[str, str]:
    """-> (wrapped_dek b64, key_version) under the *current* master key."""
    master = (keyring or get_keyring()).current
    nonce = secrets.token_bytes(NONCE_BYTES)
    wrapped = nonce + AESGCM(master.key).encrypt(nonce, dek, _dek_aad(workspace_id))
    return _b64e(wrapped), master.version


def unwrap_data_key(
    workspace_id: int, wrapped_dek: str, key_version: str | None, keyring: Keyring | None = None
) -> bytes:
    ring = keyring or get_keyring()
    blob = _b64d(wrapped_dek)
    if len(blob) <= NONCE_BYTES:
        raise VaultError("malformed wrapped data key")
    for master in ring.by_version(key_version):
        try:
            return AESGCM(master.key).decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], _dek_aad(workspace_id)
            )
        except InvalidTag:
            continue
    raise MasterKeyMismatch(
        f"data key of workspace {int(workspace_id)} opens with no configured master key "
        f"(wrapped under {key_version!r})"
    )


@functools.lru_cache(maxsize=4096)
def _unwrap_cached(workspace_id: int, wrapped_dek: str, key_version: str | None) -> bytes:
    return unwrap_data_key(workspace_id, wrapped_dek, key_version)


# --- secrets --------------------------------------------------------------------------------


def encrypt_with_dek(workspace_id: int, dek: bytes, secret: str) -> tuple[str, str]:
    """-> (nonce b64, ciphertext b64)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(dek).encrypt(nonce, secret.encode("utf-8"), _secret_aad(workspace_id))
    return _b64e(nonce), _b64e(ciphertext)


def decrypt_with_dek(workspace_id: int, dek: bytes, nonce: str, ciphertext: str) -> str:
    try:
        plain = AESGCM(dek).decrypt(_b64d(nonce), _b64d(ciphertext), _secret_aad(workspace_id))
    except (InvalidTag, ValueError) as exc:
        raise VaultError("secret failed to decrypt (tampered, or from another workspace)") from exc
    return plain.decode("utf-8")


def seal_secret(workspace_id: int, secret: str, *, wrapped_dek: str, key_version: str) -> dict:
    """Encrypt `secret` under the workspace's data key; returns an `enc` dict."""
    dek = _unwrap_cached(int(workspace_id), wrapped_dek, key_version)
    nonce, ciphertext = encrypt_with_dek(workspace_id, dek, secret)
    return {
        "wrapped_dek": wrapped_dek,
        "nonce": nonce,
        "ciphertext": ciphertext,
        "key_version": key_version,
    }


def open_secret(workspace_id: int, enc: dict) -> str:
    """Decrypt an `enc` dict for `workspace_id`. Raises VaultError; never logs the secret."""
    try:
        wrapped, nonce, ciphertext = enc["wrapped_dek"], enc["nonce"], enc["ciphertext"]
    except (KeyError, TypeError) as exc:
        raise VaultError("malformed enc") from exc
    dek = _unwrap_cached(int(workspace_id), wrapped, enc.get("key_version"))
    return decrypt_with_dek(workspace_id, dek, nonce, ciphertext)


def last4(secret: str) -> str:
    return secret[-4:] if len(secret) >= 8 else ""


# --- Secrets sealed under a key derived for one purpose (no workspace: e.g. allauth TOTP seeds).
_SEALED_PREFIX = "alephant:v1:"


def _purpose_key(master: MasterKey, purpose: str) -> bytes:
    # HKDF with the purpose as info: a key for TOTP seeds can open nothing else, and vice versa.
    info = b"alephant purpose key v1:" + purpose.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master.key)


def seal_for_purpose(purpose: str, text: str, keyring: Keyring | None = None) -> str:
    """`alephant:v1:<key_version>:<b64(nonce || AES-GCM(text))>`, the purpose bound as aad."""
    master = (keyring or get_keyring()).current
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_purpose_key(master, purpose)).encrypt(
        nonce, text.encode("utf-8"), purpose.encode()
    )
    return f"{_SEALED_PREFIX}{master.version}:{_b64e(nonce + sealed)}"


def open_for_purpose(purpose: str, value: str, keyring: Keyring | None = None) -> str:
    """The text `seal_for_purpose` sealed. A value without the prefix is returned unchanged:
    rows written before sealing existed (they are re-sealed on their next write)."""
    if not value.startswith(_SEALED_PREFIX):
        return value
    version, _, payload = value[len(_SEALED_PREFIX) :].partition(":")
    raw = _b64d(payload)
    for master in (keyring or get_keyring()).by_version(version):
        try:
            plain = AESGCM(_purpose_key(master, purpose)).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()
            )
        except (InvalidTag, ValueError):
            continue
        return plain.decode("utf-8")
    raise MasterKeyMismatch(f"sealed {purpose} value opens with no configured master key")
