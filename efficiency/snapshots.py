"""The response-cache opt-ins, published to the gateway in the workspace snapshot
(`settings.response_cache`, read by `gateway/hotpath/cache.py`)."""

from __future__ import annotations

import logging

from efficiency.models import CacheScope, ResponseCachePolicy
from gateway.snapshots import register_workspace_extender

logger = logging.getLogger(__name__)


def cache_section(workspace_id: int) -> dict:
    section: dict = {"workspace": None, "keys": {}, "agents": {}}
    for p in ResponseCachePolicy.objects.filter(workspace_id=workspace_id).order_by("id"):
        rule = {"enabled": p.enabled, "ttl_s": p.ttl_seconds}
        if p.scope == CacheScope.WORKSPACE:
            section["workspace"] = rule
        elif p.scope == CacheScope.KEY:
            section["keys"][str(p.gateway_key_id)] = rule
        else:
            section["agents"][str(p.agent_id)] = rule
    return section


def extend_workspace_snapshot(workspace_id: int, snapshot: dict) -> None:
    """Runs inside the workspace scope (called by `gateway.snapshots.build_workspace_snapshot`)."""
    snapshot.setdefault("settings", {})["response_cache"] = cache_section(workspace_id)


def register() -> None:
    register_workspace_extender(extend_workspace_snapshot)
