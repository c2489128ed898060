"""Workspace data-key rotation and master-key re-wrapping (see `datakeys.py` for the keys)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from billing.models import AlertChannel
from billing.services.channel_secrets import channel_secrets_reseal
from core import vault
from gateway.models import ProviderCredential, WorkspaceDataKey
from gateway.services.datakeys import DATAKEY_RESEALERS, datakey_active
from gateway.snapshots import publish_workspace_on_commit
from workspaces.models import Workspace


@transaction.atomic
def datakey_rotate(*, workspace: Workspace) -> WorkspaceDataKey:
    """New data key for the workspace; every credential is re-encrypted under it, the old key is
    retired. One transaction: readers see either all-old or all-new."""
    old = datakey_active(workspace=workspace)
    old_dek = vault.unwrap_data_key(workspace.pk, old.wrapped_dek, old.key_version)
    new_dek = vault.new_data_key()
    wrapped, key_version = vault.wrap_data_key(workspace.pk, new_dek)
    WorkspaceDataKey.objects.filter(pk=old.pk).update(active=False)
    new = WorkspaceDataKey.objects.create(
        workspace=workspace, version=old.version + 1, wrapped_dek=wrapped, key_version=key_version
    )
    credentials = ProviderCredential.objects.filter(workspace=workspace).select_for_update()
    for credential in credentials:
        dek = (
            old_dek
            if credential.data_key_id == old.pk
            else vault.unwrap_data_key(
                workspace.pk, credential.data_key.wrapped_dek, credential.data_key.key_version
            )
        )
        secret = vault.decrypt_with_dek(workspace.pk, dek, credential.nonce, credential.ciphertext)
        credential.nonce, credential.ciphertext = vault.encrypt_with_dek(
            workspace.pk, new_dek, secret
        )
        credential.data_key = new
        credential.updated_at = timezone.now()
        credential.save(update_fields=["nonce", "ciphertext", "data_key", "updated_at"])
    # Alert channels hold sealed secrets too (Slack URLs, webhook keys).
    channel_secrets_reseal(workspace_id=workspace.pk, key=new, dek=new_dek)
    # So do apps above this one (reconciliation's admin keys), registered at start-up.
    for reseal in DATAKEY_RESEALERS:
        reseal(workspace_id=workspace.pk, key=new, dek=new_dek)
    # Retired keys that nothing points at any more can go.
    WorkspaceDataKey.objects.filter(workspace=workspace, active=False).exclude(
        pk__in=ProviderCredential.objects.filter(workspace=workspace).values("data_key_id")
    ).exclude(
        pk__in=AlertChannel.objects.filter(workspace=workspace).values("data_key_id")
    ).delete()
    publish_workspace_on_commit(workspace.pk)
    return new


@transaction.atomic
def datakeys_rewrap(*, workspace: Workspace) -> int:
    """Re-wrap every data key of the workspace under the current master key. Returns how many
    changed. Idempotent: keys already under the current master key are left alone."""
    ring = vault.get_keyring()
    changed = 0
    for key in WorkspaceDataKey.objects.filter(workspace=workspace).select_for_update():
        if key.key_version == ring.current.version:
            continue
        dek = vault.unwrap_data_key(workspace.pk, key.wrapped_dek, key.key_version)
        key.wrapped_dek, key.key_version = vault.wrap_data_key(workspace.pk, dek)
        key.rewrapped_at = timezone.now()
        key.save(update_fields=["wrapped_dek", "key_version", "rewrapped_at"])
        changed += 1
    if changed:
        publish_workspace_on_commit(workspace.pk)
    return changed
