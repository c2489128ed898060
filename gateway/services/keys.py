"""Writes for provider credentials (BYO keys) and gateway keys.

Every write publishes the affected Redis snapshot on commit (docs/CONTRACTS.md), so the gateway
sees a new, changed or revoked key within its 1 s cache window.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import keyhash, vault
from gateway.models import GatewayKey, ProviderCredential
from gateway.services.datakeys import datakey_active
from gateway.services.key_limits import key_limits_check
from gateway.services.validation import (
    require_secret_for_new_destination,
    validate_base_url,
    validate_credential_fields,
)
from gateway.snapshots import publish_key_on_commit, publish_workspace_on_commit
from workspaces.models import Agent, Member, Workspace
from workspaces.services.audit import audit_record

_UNSET: Any = object()


def credential_summary(credential: ProviderCredential) -> dict:
    """What the audit log may say about a credential: never the secret."""
    return {
        "provider": credential.provider,
        "name": credential.name,
        "last4": credential.last4,
        "base_url": credential.base_url,
        "api_version": credential.api_version,
        "organization": credential.organization,
        "timeout_s": credential.timeout_s,
    }


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


# --- provider credentials -------------------------------------------------------------------


def _require_manager(actor: Member | None) -> None:
    if actor is not None and not actor.can_manage:
        raise PermissionDenied("Only owners and admins can manage provider keys.")


@transaction.atomic
def provider_key_create(
    *,
    workspace: Workspace,
    provider: str,
    name: str,
    secret: str,
    actor: Member | None = None,
    base_url: str = "",
    api_version: str = "",
    organization: str = "",
    timeout_s: int = 120,
) -> ProviderCredential:
    _require_manager(actor)
    base_url = validate_base_url(base_url)
    validate_credential_fields(
        provider=provider, name=name, secret=secret, base_url=base_url, timeout_s=timeout_s
    )
    name = name.strip()
    if ProviderCredential.objects.filter(workspace=workspace, name=name).exists():
        raise ValidationError({"name": "A provider key with this name already exists."})
    data_key = datakey_active(workspace=workspace)
    enc = vault.seal_secret(
        workspace.pk, secret, wrapped_dek=data_key.wrapped_dek, key_version=data_key.key_version
    )
    try:
        with transaction.atomic():
            credential = ProviderCredential.objects.create(
                workspace=workspace,
                provider=provider,
                name=name,
                base_url=base_url,
                api_version=api_version.strip(),
                organization=organization.strip(),
                timeout_s=timeout_s,
                last4=vault.last4(secret),
                nonce=enc["nonce"],
                ciphertext=enc["ciphertext"],
                data_key=data_key,
                created_by=actor,
            )
    except IntegrityError as exc:  # a concurrent create with the same name
        raise ValidationError({"name": "A provider key with this name already exists."}) from exc
    audit_record(
        workspace=workspace,
        actor=actor,
        action="provider_key.create",
        target=credential,
        after=credential_summary(credential),
    )
    publish_workspace_on_commit(workspace.pk)
    return credential


@transaction.atomic
def provider_key_update(
    *,
    credential: ProviderCredential,
    actor: Member | None = None,
    name: str = _UNSET,
    secret: str = _UNSET,
    base_url: str = _UNSET,
    api_version: str = _UNSET,
    organization: str = _UNSET,
    timeout_s: int = _UNSET,
) -> ProviderCredential:
    _require_manager(actor)
    require_secret_for_new_destination(
        current_base_url=credential.base_url,
        current_provider=credential.provider,
        base_url=None if base_url is _UNSET else base_url,
        provider=None,
        secret_given=secret is not _UNSET,
    )
    before = credential_summary(credential)
    if name is not _UNSET:
        name = name.strip()
        clash = ProviderCredential.objects.filter(workspace_id=credential.workspace_id, name=name)
        if clash.exclude(pk=credential.pk).exists():
            raise ValidationError({"name": "A provider key with this name already exists."})
        credential.name = name
    if base_url is not _UNSET:
        credential.base_url = validate_base_url(base_url)
    if api_version is not _UNSET:
        credential.api_version = api_version.strip()
    if organization is not _UNSET:
        credential.organization = organization.strip()
    if timeout_s is not _UNSET:
        credential.timeout_s = timeout_s
    validate_credential_fields(
        provider=credential.provider,
        name=credential.name,
        secret=None if secret is _UNSET else secret,
        base_url=credential.base_url,
        timeout_s=credential.timeout_s,
    )
    if secret is not _UNSET:
        data_key = datakey_active(workspace=credential.workspace)
        enc = vault.seal_secret(
            credential.workspace_id,
            secret,
            wrapped_dek=data_key.wrapped_dek,
            key_version=data_key.key_version,
        )
        credential.nonce, credential.ciphertext = enc["nonce"], enc["ciphertext"]
        credential.data_key = data_key
        credential.last4 = vault.last4(secret)
    credential.updated_at = timezone.now()
    credential.save()
    after = credential_summary(credential)
    if secret is not _UNSET:
        after["secret"] = "(replaced)"
    audit_record(
        workspace=credential.workspace,
        actor=actor,
        action="provider_key.update",
        target=credential,
        before=before,
        after=after,
    )
    publish_workspace_on_commit(credential.workspace_id)
    return credential


@transaction.atomic
def provider_key_delete(*, credential: ProviderCredential, actor: Member | None = None) -> None:
    _require_manager(actor)
    workspace = credential.workspace
    audit_record(
        workspace=workspace,
        actor=actor,
        action="provider_key.delete",
        target=credential,
        before=credential_summary(credential),
    )
    credential.delete()
    publish_workspace_on_commit(workspace.pk)


def provider_key_reveal(*, credential: ProviderCredential) -> str:
    """The plaintext secret, for server-side use only (connection tests). Never return it."""
    from gateway.services.datakeys import enc_for

    return vault.open_secret(credential.workspace_id, enc_for(credential))


# --- gateway keys ---------------------------------------------------------------------------


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
    if (member is None) == (agent is None):
        raise ValidationError({"member_id": "Give exactly one of member_id or agent_id."})
    for holder in (member, agent):
        if holder is not None and holder.workspace_id != workspace.pk:
            raise ValidationError({"member_id": "Not found."})
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
