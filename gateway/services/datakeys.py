"""Workspace data keys: created on first use; the `enc` dict a snapshot carries. Rotation and
re-wrapping live in `datakey_rotation.py` (they re-seal billing's channels and publish snapshots,
which both build on this module)."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from core import vault
from gateway.models import ProviderCredential, WorkspaceDataKey
from workspaces.models import Workspace

# Apps above gateway that seal secrets under the workspace data key (they may not be imported
# here) register a `reseal(*, workspace_id, key, dek)` from their AppConfig.ready(): rotation
# calls each one, so no row is left pointing at the retired key.
DATAKEY_RESEALERS: list[Callable[..., None]] = []


def datakey_active(*, workspace: Workspace) -> WorkspaceDataKey:
    """The workspace's active data key, created (and wrapped) on first use."""
    key = WorkspaceDataKey.objects.filter(workspace=workspace, active=True).first()
    if key is not None:
        return key
    wrapped, key_version = vault.wrap_data_key(workspace.pk, vault.new_data_key())
    with transaction.atomic():
        return WorkspaceDataKey.objects.create(
            workspace=workspace, version=1, wrapped_dek=wrapped, key_version=key_version
        )


def enc_for(credential: ProviderCredential, data_key: WorkspaceDataKey | None = None) -> dict:
    """The `enc` dict (docs/CONTRACTS.md) of a stored credential."""
    key = data_key or credential.data_key
    return {
        "wrapped_dek": key.wrapped_dek,
        "nonce": credential.nonce,
        "ciphertext": credential.ciphertext,
        "key_version": key.key_version,
    }
