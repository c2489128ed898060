"""Key and workspace snapshots for the bench gateway, written straight into its private Redis
(sealed with the configured master key), so the bench touches no Postgres row."""

from __future__ import annotations

import orjson
import redis

from core import rediskeys, vault
from core.keyhash import generate_key, hash_key

CHAIN = ("key", "agent", "member", "department", "workspace")


def _budget(budget_id: int, scope_type: str, scope_id: int) -> dict:
    return {
        "id": budget_id,
        "scope_type": scope_type,
        "scope_id": scope_id,
        "metric": "usd",
        "limit": 1_000_000 * 1_000_000_000,  # $1M: never refuses
        "period": "lifetime",
        "ladder": [50, 75, 90, 100],
        "throttle_at": None,
        "throttle_rpm": None,
        "hard_stop": True,
        "model": None,
    }


def seed_key(
    *, redis_url: str, key_hash_secret: str, ws_id: int, base_url: str, budgets: bool
) -> str:
    """A workspace whose one OpenAI credential points at `base_url`, and a key on it (rate cap
    set, lifted out of reach); with `budgets`, a money budget on every scope of the key's chain (5),
    their counters pre-seeded. Returns the raw key."""
    raw, prefix = generate_key()
    wrapped, version = vault.wrap_data_key(ws_id, vault.new_data_key())
    enc = vault.seal_secret(ws_id, "sk-bench-upstream", wrapped_dek=wrapped, key_version=version)
    enc.setdefault("wrapped_dek", wrapped)
    enc.setdefault("key_version", version)
    key = {
        "v": 1, "workspace_id": ws_id, "key_id": 1, "prefix": prefix, "member_id": 1,
        "department_id": 1 if budgets else None, "agent_id": 1 if budgets else None,
        "member_agents": {}, "expires_at": None, "revoked": False, "allowed_models": None,
        "rpm": 2_000_000_000, "tpm": None,
    }  # fmt: skip
    credential = {
        "id": 1, "provider": "openai", "name": "mock", "base_url": base_url, "api_version": None,
        "organization": None, "timeout_s": 60, "enc": enc,
    }  # fmt: skip
    scopes = [(scope, ws_id if scope == "workspace" else 1) for scope in CHAIN]
    budget_list = [_budget(900 + i, s, sid) for i, (s, sid) in enumerate(scopes)] if budgets else []
    workspace = {
        "v": 1, "workspace_id": ws_id, "time_zone": "UTC",
        # The floor bounds every key's rpm (a key only narrows it): lifted for the bench.
        "rpm_floor": 2_000_000_000, "credentials": [credential], "price_overrides": [],
        "budgets": budget_list, "settings": {},
    }  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    for budget in budget_list:
        counter = rediskeys.budget_counter(ws_id, budget["id"], "life")
        client.hset(counter, mapping={"init": "bench", "spent": 0, "reserved": 0})
    client.set(rediskeys.key_snapshot(hash_key(raw, key_hash_secret)), orjson.dumps(key))
    client.set(rediskeys.workspace_snapshot(ws_id), orjson.dumps(workspace))
    client.close()
    return raw
