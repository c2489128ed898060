"""Exact-match response cache for non-streaming calls. Django-free: the hot path uses it.

Opt-in, most specific first: the request header `Alephant-Cache: on|off`, then the policy of
the call's agent, then its gateway key, then the workspace (the workspace snapshot's
`settings.response_cache`, written by `efficiency/snapshots.py`):

    {"workspace": {"enabled": true, "ttl_s": 3600} | null,
     "keys":   {"<key id>":   {"enabled": bool, "ttl_s": int}},
     "agents": {"<agent id>": {"enabled": bool, "ttl_s": int}}}

Entries are keyed by workspace + `request_fingerprint` (SHA-256 of the endpoint and the
canonical request body: model, messages and every parameter except the ones that never change
the answer), so two workspaces never share an answer. A hit is free: the gateway records it in
the ledger with `cache_hit=True` and `saved_usd` = what the original call cost.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from core.rediskeys import RESPONSE_CACHE_PREFIX

logger = logging.getLogger("alephant.gateway.cache")

HEADER = b"alephant-cache"
KEY_PREFIX = RESPONSE_CACHE_PREFIX
# Defaults; the gateway passes its `Config` values (ALEPHANT_CACHE_TTL_SECONDS,
# ALEPHANT_CACHE_MAX_BYTES, read once at startup).
DEFAULT_TTL_S = 3600
MAX_ENTRY_BYTES = 1024 * 1024
# Parameters that never change the answer (delivery, bookkeeping), left out of the key.
IGNORED_PARAMS = frozenset({"stream", "stream_options", "user", "metadata", "store"})
_SEP = b"\n"


@dataclass(frozen=True)
class Entry:
    body: bytes
    cost_usd: Decimal
    provider: str
    model: str
    input_tokens: int
    output_tokens: int


def request_fingerprint(endpoint: str, body: dict[str, Any]) -> str:
    canonical = {k: v for k, v in body.items() if k not in IGNORED_PARAMS}
    payload = orjson.dumps({"endpoint": endpoint, "body": canonical}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


def cache_key(workspace_id: int, fingerprint: str) -> str:
    return f"{KEY_PREFIX}{int(workspace_id)}:{fingerprint}"


def ttl_for(
    workspace: dict[str, Any],
    key: dict[str, Any],
    agent_id: int | None,
    header: bytes | None,
    *,
    default_ttl_s: int | None = None,
) -> int:
    """Seconds to cache this call's answer; 0 = don't use the cache."""
    policy = (workspace.get("settings") or {}).get("response_cache") or {}
    chosen = None
    for rule in (
        (policy.get("agents") or {}).get(str(agent_id)) if agent_id is not None else None,
        (policy.get("keys") or {}).get(str(key.get("key_id"))),
        policy.get("workspace"),
    ):
        if rule is not None:
            chosen = rule
            break
    ttl = int((chosen or {}).get("ttl_s") or default_ttl_s or DEFAULT_TTL_S)
    wanted = header.decode("latin-1").strip().lower() if header else ""
    if wanted in ("off", "0", "false", "no"):
        return 0
    if wanted in ("on", "1", "true", "yes"):
        return ttl
    return ttl if chosen and chosen.get("enabled") else 0


async def get_entry(redis: Any, workspace_id: int, fingerprint: str) -> Entry | None:
    raw = await redis.get(cache_key(workspace_id, fingerprint))
    if not raw:
        return None
    meta, _, body = bytes(raw).partition(_SEP)
    try:
        info = orjson.loads(meta)
        return Entry(
            body,
            Decimal(info["cost_usd"]),
            info["provider"],
            info["model"],
            int(info["input_tokens"]),
            int(info["output_tokens"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ArithmeticError):
        return None  # an unreadable entry is a miss; the next put overwrites it


async def get(redis: Any, workspace_id: int, fingerprint: str) -> bytes | None:
    entry = await get_entry(redis, workspace_id, fingerprint)
    return entry.body if entry else None


async def put(
    redis: Any,
    workspace_id: int,
    fingerprint: str,
    body: bytes,
    *,
    ttl_s: int,
    cost_usd: Decimal = Decimal(0),
    provider: str = "",
    model: str = "",
    input_tokens: int = 0,
    output_tokens: int = 0,
    max_bytes: int | None = None,
) -> bool:
    """Store an answer for `ttl_s` seconds. False (nothing stored) when it is too large."""
    if ttl_s <= 0 or len(body) > (max_bytes or MAX_ENTRY_BYTES):
        return False
    meta = orjson.dumps(
        {
            "cost_usd": str(cost_usd),
            "provider": provider,
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
    )
    await redis.set(cache_key(workspace_id, fingerprint), meta + _SEP + body, ex=int(ttl_s))
    return True


async def lookup(redis: Any, workspace_id: int, fingerprint: str) -> Entry | None:
    """`get_entry` for the hot path: a Redis failure is a miss, never a failed request."""
    try:
        return await get_entry(redis, workspace_id, fingerprint)
    except Exception as exc:
        logger.warning("response cache lookup failed: %r", exc)
        return None


async def store(
    redis: Any, workspace_id: int, fingerprint: str, body: bytes, **kwargs: Any
) -> None:
    """`put` for the hot path: a Redis failure only loses the entry."""
    try:
        await put(redis, workspace_id, fingerprint, body, **kwargs)
    except Exception as exc:
        logger.warning("response cache store failed: %r", exc)
