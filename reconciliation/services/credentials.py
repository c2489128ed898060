"""Provider admin keys: sealed in the vault under the workspace's data key, like call keys, but
in their own table. Only `admin_credential_reveal` opens one, and only the pull uses it."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from core import vault
from gateway.models import WorkspaceDataKey
from gateway.services.datakeys import datakey_active
from gateway.services.validation import validate_base_url
from reconciliation.models import AdminCredential, AdminProvider
from workspaces.models import Member, Workspace
from workspaces.services.audit import audit_record

# Admin keys look different from call keys; refusing a call key here catches the common mix-up.
ADMIN_PREFIXES = {"openai": "sk-admin-", "anthropic": "sk-ant-admin"}


def _summary(credential: AdminCredential) -> dict:
    return {
        "provider": credential.provider,
        "last4": credential.last4,
        "base_url": credential.base_url,
    }


@transaction.atomic
def admin_credential_set(
    *,
    workspace: Workspace,
    provider: str,
    secret: str,
    actor: Member | None = None,
    base_url: str = "",
) -> AdminCredential:
    """Store (or replace) the workspace's admin key for `provider`."""
    if actor is not None and not actor.can_manage:
        raise PermissionDenied("Only owners and admins can manage admin keys.")
    if provider not in AdminProvider.values:
        raise ValidationError({"provider": f"one of {', '.join(AdminProvider.values)}"})
    secret = (secret or "").strip()
    if not secret.startswith(ADMIN_PREFIXES[provider]) or len(secret) > 500:
        raise ValidationError(
            {"secret": f"An {provider} admin key starts with {ADMIN_PREFIXES[provider]}."}
        )
    base_url = validate_base_url(base_url)
    data_key = datakey_active(workspace=workspace)
    enc = vault.seal_secret(
        workspace.pk, secret, wrapped_dek=data_key.wrapped_dek, key_version=data_key.key_version
    )
    credential, _ = AdminCredential.objects.update_or_create(
        workspace=workspace,
        provider=provider,
        defaults={
            "base_url": base_url,
            "last4": vault.last4(secret),
            "nonce": enc["nonce"],
            "ciphertext": enc["ciphertext"],
            "data_key": data_key,
            "last_error": "",
        },
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="admin_key.set",
        target=credential,
        after=_summary(credential),
    )
    return credential


@transaction.atomic
def admin_credential_delete(*, credential: AdminCredential, actor: Member | None = None) -> None:
    if actor is not None and not actor.can_manage:
        raise PermissionDenied("Only owners and admins can manage admin keys.")
    audit_record(
        workspace=credential.workspace,
        actor=actor,
        action="admin_key.delete",
        target=credential,
        before=_summary(credential),
    )
    credential.delete()


def admin_credentials_reseal(*, workspace_id: int, key: WorkspaceDataKey, dek: bytes) -> None:
    """Re-encrypt the workspace's admin keys under a new data key (data-key rotation)."""
    rows = AdminCredential.objects.filter(workspace_id=workspace_id).select_for_update(of=("self",))
    for credential in rows.select_related("data_key"):
        secret = admin_credential_reveal(credential=credential)
        credential.nonce, credential.ciphertext = vault.encrypt_with_dek(workspace_id, dek, secret)
        credential.data_key = key
        credential.save(update_fields=["nonce", "ciphertext", "data_key"])


def admin_credential_reveal(*, credential: AdminCredential) -> str:
    """The plaintext admin key, for the one outbound pull that needs it. Never log or return."""
    key = credential.data_key
    return vault.open_secret(
        credential.workspace_id,
        {
            "wrapped_dek": key.wrapped_dek,
            "nonce": credential.nonce,
            "ciphertext": credential.ciphertext,
            "key_version": key.key_version,
        },
    )
