"""Reads for provider credentials and gateway keys."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from gateway.models import GatewayKey, ProviderCredential
from workspaces.models import Member, Workspace


def provider_keys(*, workspace: Workspace) -> QuerySet[ProviderCredential]:
    return ProviderCredential.objects.filter(workspace=workspace)


def gateway_keys_visible_to(*, workspace: Workspace, member: Member) -> QuerySet[GatewayKey]:
    """Owners/admins see every key; everyone else the keys they hold or their agents hold."""
    keys = GatewayKey.objects.filter(workspace=workspace).select_related("agent")
    if member.can_manage:
        return keys
    return keys.filter(Q(member=member) | Q(agent__owner=member))
