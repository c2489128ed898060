"""Provider key links: an admin tells us which provider-side key id one of our call keys is
(OpenAI's usage API groups by `api_key_id`, Anthropic's by its `apikey_...` id), so the day
drill-down can compare the provider's usage per key with the ledger's per credential."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from gateway.models import ProviderCredential
from reconciliation.models import ProviderKeyLink
from workspaces.models import Member, Workspace
from workspaces.services.audit import audit_record

MAX_KEY_ID = 200


@transaction.atomic
def provider_key_link_set(
    *,
    workspace: Workspace,
    credential: ProviderCredential,
    provider_key_id: str,
    actor: Member | None = None,
) -> ProviderKeyLink | None:
    """Link `credential` to the provider's key id; a blank id removes the link."""
    if actor is not None and not actor.can_manage:
        raise PermissionDenied("Only owners and admins can link provider keys.")
    if credential.workspace_id != workspace.pk:  # callers resolve ids in-workspace; belt and braces
        raise PermissionDenied("Not this workspace's key.")
    key_id = provider_key_id.strip()
    if len(key_id) > MAX_KEY_ID:
        raise ValidationError({"provider_key_id": f"At most {MAX_KEY_ID} characters."})
    before = ProviderKeyLink.objects.filter(workspace=workspace, credential=credential).first()
    if not key_id:
        if before is not None:
            before.delete()
        link = None
    else:
        taken = ProviderKeyLink.objects.filter(workspace=workspace, provider_key_id=key_id)
        if taken.exclude(credential=credential).exists():
            raise ValidationError({"provider_key_id": "Another key is already linked to this id."})
        link, _ = ProviderKeyLink.objects.update_or_create(
            workspace=workspace,
            credential=credential,
            defaults={"provider_key_id": key_id, "updated_at": timezone.now()},
        )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="reconciliation_key_link.set",
        target=credential,
        before={"provider_key_id": before.provider_key_id} if before else None,
        after={"provider_key_id": key_id},
    )
    return link
