"""Writes for gateway keys; provider credentials (BYO keys) are written in `provider_keys.py`
and re-exported here, so key pages and tests have one import.

Every write publishes the affected Redis snapshot on commit (docs/CONTRACTS.md), so the gateway
sees a new, changed or revoked key within its 1 s cache window.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from core import keyhash
from gateway.models import GatewayKey
from gateway.services.key_limits import key_limits_check
from gateway.services.provider_keys import (
    credential_summary,
    provider_key_create,
    provider_key_delete,
    provider_key_reveal,
    provider_key_update,
)
from gateway.snapshots import publish_key_on_commit
from workspaces.models import Agent, Member, Workspace
from workspaces.services.audit import audit_record

__all__ = [
    "credential_summary",
    "gateway_key_create",
    "gateway_key_revoke",
    "gateway_key_summary",
    "gateway_key_update",
    "provider_key_create",
    "provider_key_delete",
    "provider_key_reveal",
    "provider_key_update",
]

_UNSET: Any = object()


def gateway_key_summary(key: GatewayKey) -> dict:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "member_id": key.member_id,
        "agent_id": key.agent_id,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked": key.revoked_at is not None,
        "allowed_models": key.allowed_models,
        "rpm": key.rpm,
        "tpm": key.tpm,
    }


# --- gateway keys ---------------------------------------------------------------------------


def _check_holder(workspace: Workspace, member: Member | None, agent: Agent | None) -> None:
    """Exactly one holder, in the key's workspace."""
    if (member is None) == (agent is None):
        raise ValidationError({"member_id": "Give exactly one of member_id or agent_id."})
    for holder in (member, agent):
        if holder is not None and holder.workspace_id != workspace.pk:
            raise ValidationError({"member_id": "Not found."})


def _check_issuer(actor: Member | None, member: Member | None, agent: Agent | None) -> None:
    """Admins issue keys for anyone; everyone else for themselves and their own agents."""
    if actor is None or actor.can_manage:
        return
    if member is not None and member.pk == actor.pk:
        return
    if agent is not None and agent.owner_id == actor.pk:
        return
    raise PermissionDenied("You can only manage keys for yourself and your own agents.")


def _validate_key_fields(
    *,
    name: str,
    expires_at: dt.datetime | None,
    allowed_models: list[str] | None,
    rpm: int | None,
    tpm: int | None,
    creating: bool,
) -> None:
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "This field may not be blank."
    elif len(name) > 100:
        errors["name"] = "Ensure this field has no more than 100 characters."
    if creating and expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "Must be in the future."
    if allowed_models is not None:
        if not isinstance(allowed_models, list) or not all(
            isinstance(m, str) and 0 < len(m) <= 200 for m in allowed_models
        ):
            errors["allowed_models"] = "Must be a list of model names."
        elif len(allowed_models) > 200:
            errors["allowed_models"] = "At most 200 models."
    for field, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and not 1 <= value <= 2_000_000_000:
            errors[field] = "Must be a positive integer."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def gateway_key_create(
    *,
    workspace: Workspace,
    name: str,
    member: Member | None = None,
    agent: Agent | None = None,
    actor: Member | None = None,
    expires_at: dt.datetime | None = None,
    allowed_models: list[str] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
) -> tuple[GatewayKey, str]:
    """Issue a key to exactly one of `member` / `agent`. Returns (key, raw key): the raw key is
    shown once and never stored (only its HMAC)."""
    _check_holder(workspace, member, agent)
    _check_issuer(actor, member, agent)
    _validate_key_fields(
        name=name,
        expires_at=expires_at,
        allowed_models=allowed_models,
        rpm=rpm,
        tpm=tpm,
        creating=True,
    )
    created_at = timezone.now()
    expires_at = key_limits_check(
        member=member if member is not None else agent.owner,  # type: ignore[union-attr]
        created_at=created_at,
        allowed_models=allowed_models,
        rpm=rpm,
        tpm=tpm,
        expires_at=expires_at,
    )
    raw, prefix = keyhash.generate_key()
    key = GatewayKey.objects.create(
        workspace=workspace,
        name=name.strip(),
        prefix=prefix,
        key_hash=keyhash.hash_key(raw, settings.ALEPHANT_KEY_HASH_SECRET),
        member=member,
        agent=agent,
        created_by=actor,
        created_at=created_at,
        expires_at=expires_at,
        allowed_models=allowed_models,
        rpm=rpm,
        tpm=tpm,
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="gateway_key.create",
        target=key,
        after=gateway_key_summary(key),
    )
    publish_key_on_commit(key.key_hash)
    return key, raw


@transaction.atomic
def gateway_key_update(
    *,
    key: GatewayKey,
    actor: Member | None = None,
    name: str = _UNSET,
    expires_at: dt.datetime | None = _UNSET,
    allowed_models: list[str] | None = _UNSET,
    rpm: int | None = _UNSET,
    tpm: int | None = _UNSET,
) -> GatewayKey:
    _check_issuer(actor, key.member, key.agent)
    if actor is not None and not actor.can_manage and key.created_by_id != actor.pk:
        # Limits an admin set on someone's key are not the holder's to lift (they may revoke).
        raise PermissionDenied("Only owners and admins can change a key an admin issued.")
    before = gateway_key_summary(key)
    if name is not _UNSET:
        key.name = name.strip()
    holder = key.member if key.agent is None else key.agent.owner
    if any(value is not _UNSET for value in (expires_at, allowed_models, rpm, tpm)):
        # Only what this update sets: limits tightened after minting bind through the snapshot.
        checked = key_limits_check(
            member=holder,  # type: ignore[arg-type]
            created_at=key.created_at,
            allowed_models=allowed_models,
            rpm=rpm,
            tpm=tpm,
            expires_at=expires_at,
        )
        if expires_at is not _UNSET:
            expires_at = checked
    for field, value in (
        ("expires_at", expires_at),
        ("allowed_models", allowed_models),
        ("rpm", rpm),
        ("tpm", tpm),
    ):
        if value is not _UNSET:
            setattr(key, field, value)
    _validate_key_fields(
        name=key.name,
        expires_at=key.expires_at,
        allowed_models=key.allowed_models,
        rpm=key.rpm,
        tpm=key.tpm,
        creating=False,
    )
    key.updated_at = timezone.now()
    key.save()
    audit_record(
        workspace=key.workspace,
        actor=actor,
        action="gateway_key.update",
        target=key,
        before=before,
        after=gateway_key_summary(key),
    )
    publish_key_on_commit(key.key_hash)
    return key


@transaction.atomic
def gateway_key_revoke(*, key: GatewayKey, actor: Member | None = None) -> GatewayKey:
    """Revoke (idempotent). The gateway sees `{"v":1,"revoked":true}` within ~1 s."""
    _check_issuer(actor, key.member, key.agent)
    if key.revoked_at is None:
        before = gateway_key_summary(key)
        key.revoked_at = timezone.now()
        key.updated_at = key.revoked_at
        key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(
            workspace=key.workspace,
            actor=actor,
            action="gateway_key.revoke",
            target=key,
            before=before,
            after=gateway_key_summary(key),
        )
    publish_key_on_commit(key.key_hash)
    return key
