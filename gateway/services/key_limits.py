"""Mint-time check of a gateway key's limits against its member's (set by an owner/admin).

A key may narrow its member's limits, never exceed them, whoever mints it: a value beyond them
is a 400 naming the field. A limit the key leaves unset is inherited (the key snapshot combines
both, `core/limits.py`), except expiry, which is written on the key so its holder sees it.
The gateway enforces the combined limits on every call anyway; this check makes a member's
attempt to mint around them fail loudly instead of silently producing a narrower key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError

from core.limits import glob_within
from workspaces.models import Member
from workspaces.services.limits import member_key_limits

_UNSET: Any = object()
_WHY = "this member's limit, set by an owner or admin"


def key_limits_check(
    *,
    member: Member,
    created_at: dt.datetime,
    allowed_models: list[str] | None = _UNSET,
    rpm: int | None = _UNSET,
    tpm: int | None = _UNSET,
    expires_at: dt.datetime | None = _UNSET,
) -> dt.datetime | None:
    """Raise ValidationError for any given value beyond the member's limits; return the key's
    expiry (the member's latest allowed one when `expires_at` is None; unchanged if unset)."""
    limits = member_key_limits(member=member, created_at=created_at)
    errors: dict[str, str] = {}
    if allowed_models not in (_UNSET, None, []) and limits.allowed_models:
        outside = [m for m in allowed_models if not glob_within(m, limits.allowed_models)]
        if outside:
            errors["allowed_models"] = (
                f"{', '.join(outside[:5])} not within {', '.join(limits.allowed_models)} ({_WHY})."
            )
    for name, value, top in (("rpm", rpm, limits.rpm), ("tpm", tpm, limits.tpm)):
        if value not in (_UNSET, None) and top is not None and value > top:
            errors[name] = f"Must be at most {top} ({_WHY})."
    latest = limits.expires_at
    if expires_at is not _UNSET and latest is not None:
        if expires_at is None:
            expires_at = latest
        elif expires_at > latest:
            errors["expires_at"] = f"Must be at or before {latest.isoformat()} ({_WHY})."
    if errors:
        raise ValidationError(errors)
    return None if expires_at is _UNSET else expires_at
