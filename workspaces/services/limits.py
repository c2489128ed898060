"""Member-level limits an owner/admin sets (allowed models, rpm, tpm, key lifetime/expiry).

They bind every gateway key the member or their agents hold, whoever minted it: the key
snapshots denormalise the combined limits (`core/limits.py`), so a change republishes the
member's keys on commit and keys minted before the change are bound within ~1 s.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from core.limits import Limits, member_key_expiry
from workspaces import hooks
from workspaces.models import Member, MemberLimits
from workspaces.services.audit import audit_record

_UNSET: Any = object()
MAX_INT = 2_000_000_000
MAX_LIFETIME_DAYS = 3650
LIMIT_FIELDS = ("allowed_models", "rpm", "tpm", "key_lifetime_days", "keys_expire_at")


def member_limits_of(*, member: Member) -> MemberLimits | None:
    """The member's limits row, or None when no limit was ever set."""
    return MemberLimits.objects.filter(workspace_id=member.workspace_id, member=member).first()


def member_key_limits(*, member: Member, created_at: dt.datetime) -> Limits:
    """What the member's limits allow a key created at `created_at` (see `core.limits`)."""
    row = member_limits_of(member=member)
    if row is None:
        return Limits()
    return Limits(
        allowed_models=row.allowed_models or None,
        rpm=row.rpm,
        tpm=row.tpm,
        expires_at=member_key_expiry(
            created_at=created_at,
            key_lifetime_days=row.key_lifetime_days,
            keys_expire_at=row.keys_expire_at,
        ),
    )


def member_limits_summary(row: MemberLimits | None) -> dict:
    if row is None:
        return {name: None for name in LIMIT_FIELDS}
    return {
        "allowed_models": row.allowed_models,
        "rpm": row.rpm,
        "tpm": row.tpm,
        "key_lifetime_days": row.key_lifetime_days,
        "keys_expire_at": row.keys_expire_at.isoformat() if row.keys_expire_at else None,
    }


def _validate(row: MemberLimits) -> None:
    errors: dict[str, str] = {}
    models = row.allowed_models
    if models is not None:
        if not isinstance(models, list) or not all(
            isinstance(m, str) and 0 < len(m.strip()) <= 200 for m in models
        ):
            errors["allowed_models"] = "Must be a list of model names or globs."
        elif len(models) > 200:
            errors["allowed_models"] = "At most 200 models."
    for name, top in (("rpm", MAX_INT), ("tpm", MAX_INT), ("key_lifetime_days", MAX_LIFETIME_DAYS)):
        value = getattr(row, name)
        if value is not None and (isinstance(value, bool) or not 1 <= int(value) <= top):
            errors[name] = f"Must be an integer from 1 to {top}, or null for no limit."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def member_limits_set(
    *,
    member: Member,
    actor: Member | None,
    allowed_models: list[str] | None = _UNSET,
    rpm: int | None = _UNSET,
    tpm: int | None = _UNSET,
    key_lifetime_days: int | None = _UNSET,
    keys_expire_at: dt.datetime | None = _UNSET,
) -> MemberLimits:
    """Set (partially) a member's limits. Owners and admins only: a member never lifts their
    own. `None` clears a limit; an empty model list means no model limit."""
    if actor is not None and not actor.can_manage:
        raise PermissionDenied("Only owners and admins can set a member's limits.")
    row = member_limits_of(member=member) or MemberLimits(
        workspace_id=member.workspace_id, member=member
    )
    before = member_limits_summary(row if row.pk else None)
    changes = {
        "allowed_models": allowed_models,
        "rpm": rpm,
        "tpm": tpm,
        "key_lifetime_days": key_lifetime_days,
        "keys_expire_at": keys_expire_at,
    }
    for name, value in changes.items():
        if value is not _UNSET:
            setattr(row, name, value)
    if isinstance(row.allowed_models, list):
        row.allowed_models = [m.strip() for m in row.allowed_models if isinstance(m, str)] or None
    _validate(row)
    row.updated_at = timezone.now()
    row.save()
    audit_record(
        workspace=member.workspace,
        actor=actor,
        action="member.limits",
        target=member,
        target_label=member.user.email,
        before=before,
        after=member_limits_summary(row),
    )
    hooks.member_changed(workspace_id=member.workspace_id, member_id=member.pk)
    return row
