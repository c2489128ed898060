"""Redis snapshots the gateway reads instead of Postgres (format: docs/CONTRACTS.md).

Django writes them on every change (`publish_*_on_commit`, called by the services) and the
gateway falls back to `load_snapshot` on a Redis miss. Keys:

* `alephant:gk:<key_hash>` -> key snapshot; a revoked or deleted key is `{"v":1,"revoked":true}`
  (never just deleted, so a miss stays distinguishable from a revocation).
* `alephant:ws:<workspace_id>` -> workspace snapshot (credentials carry only ciphertext: `enc`).

Other apps add fields to the workspace snapshot with `register_workspace_extender(fn)` where
`fn(workspace_id: int, snapshot: dict) -> None` runs inside the workspace scope (budgets do this).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any, Literal

import redis
from django.conf import settings
from django.db import transaction

from core import rediskeys
from core.limits import Limits, effective
from core.redisclients import sync_client
from workspaces import system
from workspaces.tenancy import workspace_scope

logger = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
RPM_FLOOR = 100
REVOKED = {"v": SNAPSHOT_VERSION, "revoked": True}
# Snapshots expire so that a change made outside the services (a cascade, a manual SQL fix, a
# missed publish) is corrected within minutes: on a miss the gateway calls `load_snapshot`, which
# rebuilds from Postgres. Revoked markers live longer (they are cheap and final). Each expiry is
# drawn from [TTL * 4/5, TTL]: snapshots written together (a bulk import, a rebuild after a
# flush or failover) would otherwise expire together, and every gateway would reload them all
# from Postgres in the same second (the soak saw p99 jump 10-30x every 5 minutes).
SNAPSHOT_TTL_S = 300
REVOKED_TTL_S = 86_400

_client: redis.Redis | None = None
_extenders: list[Callable[[int, dict], None]] = []


def redis_client() -> redis.Redis:
    global _client
    if _client is None:
        _client = sync_client(settings.REDIS_URL)
    return _client


def key_redis_key(key_hash: str) -> str:
    return rediskeys.key_snapshot(key_hash)


def workspace_redis_key(workspace_id: int) -> str:
    return rediskeys.workspace_snapshot(workspace_id)


def register_workspace_extender(fn: Callable[[int, dict], None]) -> None:
    if fn not in _extenders:
        _extenders.append(fn)


# --- building -------------------------------------------------------------------------------


def _other_department(agent: Any, member: Any) -> int | None:
    """An agent's department when it is not its owner's: charged in addition to the owner's."""
    if agent is None or agent.department_id is None:
        return None
    return None if agent.department_id == member.department_id else agent.department_id


def _key_snapshot_in_scope(key_id: int) -> dict | None:
    from gateway.models import GatewayKey
    from workspaces.models import Agent
    from workspaces.services.limits import member_key_limits

    key = (
        GatewayKey.objects.select_related("member", "agent", "agent__owner")
        .filter(pk=key_id)
        .first()
    )
    if key is None:
        return None
    if key.revoked_at is not None:
        return dict(REVOKED)
    agent = key.agent
    member = key.member if agent is None else agent.owner
    assert member is not None  # the check constraint: a member or an agent (with an owner)
    member_agents: dict[str, dict] = {}
    if agent is None:
        for item in Agent.objects.filter(workspace_id=key.workspace_id, owner=member):
            member_agents[item.slug] = {
                "agent_id": item.pk,
                "agent_department_id": _other_department(item, member),
            }
    # Limits bind whoever minted the key: the key's own, narrowed by its member's (and by the
    # workspace floor, which the Enforcer applies from the workspace snapshot).
    allowlists, rpm, tpm, expires_at = effective(
        Limits(
            allowed_models=key.allowed_models or None,
            rpm=key.rpm,
            tpm=key.tpm,
            expires_at=key.expires_at,
        ),
        member_key_limits(member=member, created_at=key.created_at),
    )
    return {
        "v": SNAPSHOT_VERSION,
        "workspace_id": key.workspace_id,
        "key_id": key.pk,
        "prefix": key.prefix,
        "member_id": member.pk,
        # The member's own chain, whichever agent the call goes through; an agent placed in
        # another department charges that department too (README "Budgets").
        "department_id": member.department_id,
        "agent_department_id": _other_department(agent, member),
        "agent_id": agent.pk if agent else None,
        "member_agents": member_agents,
        "expires_at": int(expires_at.timestamp()) if expires_at else None,
        "revoked": False,
        # The first allow-list (the key's own if set) for readers that list models; a call must
        # match every list in `model_allowlists`.
        "allowed_models": allowlists[0] if allowlists else None,
        "model_allowlists": allowlists,
        "rpm": rpm,
        "tpm": tpm,
    }


def build_key_snapshot(key_hash: str) -> dict | None:
    """Snapshot for a key hash; `None` if no such key exists (anywhere)."""
    found = system.gateway_key_workspace(key_hash)
    if found is None:
        return None
    key_id, workspace_id = found
    with workspace_scope(workspace_id):
        return _key_snapshot_in_scope(key_id)


def build_workspace_snapshot(workspace_id: int) -> dict:
    from gateway.models import ProviderCredential
    from gateway.services.datakeys import enc_for
    from workspaces.models import Workspace

    with workspace_scope(workspace_id):
        workspace = Workspace.objects.get(pk=workspace_id)
        credentials = [
            {
                "id": c.pk,
                "provider": c.provider,
                "name": c.name,
                "base_url": c.base_url or None,
                "api_version": c.api_version or None,
                "organization": c.organization or None,
                "timeout_s": c.timeout_s,
                "enc": enc_for(c),
            }
            for c in ProviderCredential.objects.filter(workspace_id=workspace_id)
            .select_related("data_key")
            .order_by("id")
        ]
        snapshot: dict[str, Any] = {
            "v": SNAPSHOT_VERSION,
            "workspace_id": workspace.pk,
            "time_zone": workspace.time_zone,
            "rpm_floor": RPM_FLOOR,
            "credentials": credentials,
            "price_overrides": _price_overrides(workspace_id),
            "settings": {},
        }
        for extend in _extenders:
            extend(workspace_id, snapshot)
    return snapshot


def _price_overrides(workspace_id: int) -> list[dict]:
    from billing.models import PriceOverride

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return [
        {
            "provider": o.provider,
            "model": o.model,
            "input_per_mtok": text(o.input_per_mtok),
            "output_per_mtok": text(o.output_per_mtok),
            "cached_input_per_mtok": text(getattr(o, "cached_input_per_mtok", None)),
        }
        for o in PriceOverride.objects.filter(workspace_id=workspace_id).order_by("id")
    ]


# --- publishing -----------------------------------------------------------------------------


def _dump(snapshot: dict) -> str:
    return json.dumps(snapshot, separators=(",", ":"), sort_keys=True)


def publish_key(key_hash: str) -> dict:
    """Write the key's snapshot (or the revoked marker if the key is gone) to Redis."""
    snapshot = build_key_snapshot(key_hash) or dict(REVOKED)
    _write_key(key_hash, snapshot)
    return snapshot


def _write_key(key_hash: str, snapshot: dict) -> None:
    ttl = REVOKED_TTL_S if snapshot.get("revoked") else snapshot_ttl()
    _write_and_announce(key_redis_key(key_hash), _dump(snapshot), ttl)


def publish_workspace(workspace_id: int) -> dict:
    snapshot = build_workspace_snapshot(workspace_id)
    _write_and_announce(workspace_redis_key(workspace_id), _dump(snapshot), snapshot_ttl())
    return snapshot


def snapshot_ttl() -> int:
    """Seconds a snapshot lives: jittered so that snapshots written together don't expire
    together."""
    return random.randint(SNAPSHOT_TTL_S * 4 // 5, SNAPSHOT_TTL_S)


def _write_and_announce(key: str, value: str, ttl: int) -> None:
    """SET, then PUBLISH the key on `SNAPSHOT_CHANNEL` (one round trip, in this order): every
    gateway drops its in-memory copy and re-reads the new value, so a revocation takes effect
    in milliseconds rather than after the gateways' cache TTL (gateway/hotpath/invalidation.py)."""
    client = redis_client()
    if rediskeys.CLUSTER:  # a cluster pipeline refuses PUBLISH (no key): two round trips
        client.set(key, value, ex=ttl)
        client.publish(rediskeys.SNAPSHOT_CHANNEL, key)
        return
    pipe = client.pipeline(transaction=False)
    pipe.set(key, value, ex=ttl)
    pipe.publish(rediskeys.SNAPSHOT_CHANNEL, key)
    pipe.execute()


def _safely(fn: Callable[[], Any], what: str) -> None:
    # After commit the database change is durable; a Redis hiccup must not turn the API call
    # into an error. The gateway's loader rebuilds on a miss; a stale entry is overwritten by
    # the next publish, so log loudly.
    try:
        fn()
    except redis.RedisError:
        logger.exception("could not publish snapshot %s", what)


def publish_key_on_commit(key_hash: str) -> None:
    transaction.on_commit(lambda: _safely(lambda: publish_key(key_hash), "gk"))


def publish_workspace_on_commit(workspace_id: int) -> None:
    transaction.on_commit(
        lambda: _safely(lambda: publish_workspace(workspace_id), f"ws:{workspace_id}")
    )


def publish_member_keys_on_commit(workspace_id: int, member_id: int) -> None:
    """Republish every key held by a member or its agents (call after a member's department,
    role or agents change, since those are denormalised into the key snapshots)."""
    from django.db.models import Q

    from gateway.models import GatewayKey

    with workspace_scope(workspace_id):
        hashes = list(
            GatewayKey.objects.filter(
                Q(member_id=member_id) | Q(agent__owner_id=member_id)
            ).values_list("key_hash", flat=True)
        )
    for key_hash in hashes:
        publish_key_on_commit(key_hash)


def load_snapshot(kind: Literal["gk", "ws"], ident: str) -> dict | None:
    """The gateway's cold-path loader on a Redis miss: build, write to Redis, return.

    Unknown key hashes return None and write nothing (random keys must not fill Redis).
    """
    if kind == "gk":
        snapshot = build_key_snapshot(ident)
        if snapshot is None:
            return None
        _write_key(ident, snapshot)
        return snapshot
    if kind == "ws":
        try:
            workspace_id = int(ident)
        except ValueError:
            return None
        from workspaces.models import Workspace

        try:
            return publish_workspace(workspace_id)
        except Workspace.DoesNotExist:
            return None
    raise ValueError(f"unknown snapshot kind {kind!r}")
