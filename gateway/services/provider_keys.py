"""Writes for provider credentials (BYO keys): sealed in the vault under the workspace's data key,
audit-logged without the secret, the workspace snapshot published on commit."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import vault
from gateway.models import ProviderCredential
from gateway.services.datakeys import datakey_active, enc_for
from gateway.services.validation import (
    require_secret_for_new_destination,
    validate_base_url,
    validate_credential_fields,
)
from gateway.snapshots import publish_workspace_on_commit
from workspaces.models import Member, Workspace
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


def _set_credential_fields(
    credential: ProviderCredential,
    *,
    name: str,
    base_url: str,
    api_version: str,
    organization: str,
    timeout_s: int,
) -> None:
    """Apply the fields an update gives (`_UNSET` leaves one alone)."""
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


def _reseal(credential: ProviderCredential, secret: str) -> None:
    """Seal a new secret under the workspace's active data key."""
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
    _set_credential_fields(
        credential,
        name=name,
        base_url=base_url,
        api_version=api_version,
        organization=organization,
        timeout_s=timeout_s,
    )
    validate_credential_fields(
        provider=credential.provider,
        name=credential.name,
        secret=None if secret is _UNSET else secret,
        base_url=credential.base_url,
        timeout_s=credential.timeout_s,
    )
    if secret is not _UNSET:
        _reseal(credential, secret)
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
    return vault.open_secret(credential.workspace_id, enc_for(credential))
