"""Writes for response-cache opt-ins. Each change republishes the workspace snapshot on commit,
so every gateway picks it up within about a second."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from efficiency.models import CacheScope, ResponseCachePolicy
from gateway.snapshots import publish_workspace_on_commit
from workspaces.models import Agent, Workspace


def _publish(workspace_id: int) -> None:
    publish_workspace_on_commit(workspace_id)


@transaction.atomic
def cache_policy_set(
    *,
    workspace: Workspace,
    scope: str,
    enabled: bool = True,
    ttl_seconds: int = 3600,
    gateway_key=None,
    agent: Agent | None = None,
) -> ResponseCachePolicy:
    """Create or update the policy for one target (the workspace, a key or an agent)."""
    if scope not in CacheScope.values:
        raise ValidationError({"scope": [f"Unknown scope {scope!r}."]})
    target = {
        CacheScope.WORKSPACE: {},
        CacheScope.KEY: {"gateway_key": gateway_key},
        CacheScope.AGENT: {"agent": agent},
    }[CacheScope(scope)]
    if any(v is None for v in target.values()):
        raise ValidationError(
            {f"{scope}_id" if scope != "key" else "gateway_key_id": ["Required for this scope."]}
        )
    if not 1 <= int(ttl_seconds) <= 30 * 86400:
        raise ValidationError({"ttl_seconds": ["Between 1 second and 30 days."]})
    policy, _ = ResponseCachePolicy.objects.update_or_create(
        workspace=workspace,
        scope=scope,
        **target,
        defaults={
            "enabled": enabled,
            "ttl_seconds": int(ttl_seconds),
            "updated_at": timezone.now(),
        },
    )
    _publish(workspace.pk)
    return policy


@transaction.atomic
def cache_policy_delete(*, workspace: Workspace, policy: ResponseCachePolicy) -> None:
    ResponseCachePolicy.objects.filter(workspace=workspace, pk=policy.pk).delete()
    _publish(workspace.pk)
