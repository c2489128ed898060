"""Append-only audit log of admin actions. Summaries only: callers never pass secrets."""

from __future__ import annotations

from typing import Any

from django.db import models

from workspaces.models import AuditLog, Member, Workspace

# Keys that must never reach the log even if a caller slips (defence in depth).
_SECRET_KEYS = frozenset({"secret", "key", "token", "password", "api_key", "ciphertext", "nonce"})


def _clean(summary: dict | None) -> dict | None:
    if summary is None:
        return None
    cleaned: dict[str, Any] = {}
    for name, value in summary.items():
        if name in _SECRET_KEYS and value not in ("(replaced)", None):
            value = "(redacted)"
        elif isinstance(value, dict):
            value = _clean(value)
        cleaned[name] = value
    return cleaned


def audit_record(
    *,
    workspace: Workspace,
    actor: Member | None,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: object = "",
    target_label: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditLog:
    """Append one entry. `actor=None` means the system (a management command)."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        target_label = target_label or str(target)
    actor_label = "system"
    if actor is not None:
        actor_label = actor.user.email if actor.user_id else f"member {actor.pk}"
    return AuditLog.objects.create(
        workspace=workspace,
        actor_member_id=actor.pk if actor is not None else None,
        actor_label=actor_label[:254],
        action=action,
        target_type=target_type[:64],
        target_id=str(target_id or "")[:64],
        target_label=str(target_label)[:254],
        before=_clean(before),
        after=_clean(after),
    )
