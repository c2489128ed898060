"""Personal API tokens for the REST API: one user acting in one workspace with their role.

Format `alpt_<8>_<40>` (letters and digits). Only `sha256(token)` is stored; a token is
shown once. Lookup across tenants goes through `system.api_token_lookup` (SECURITY DEFINER).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import string
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from workspaces import system
from workspaces.models import APIToken, Member, TokenScope
from workspaces.services.audit import audit_record
from workspaces.tenancy import current_workspace_id_or_none, workspace_scope

TOKEN_PREFIX = "alpt_"
_ALPHABET = string.ascii_letters + string.digits
# Touch last_used_at at most this often per token (one UPDATE per request would serialise).
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _summary(token: APIToken) -> dict:
    return {
        "name": token.name,
        "prefix": token.prefix,
        "member_id": token.member_id,
        "scope": token.scope,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked": token.revoked_at is not None,
    }


@transaction.atomic
def api_token_create(
    *,
    member: Member,
    name: str,
    scope: str = TokenScope.ADMIN,
    expires_at: dt.datetime | None = None,
    actor: Member | None = None,
) -> tuple[APIToken, str]:
    """A new token for `member` (in the member's workspace). Returns (token, raw) — raw once.

    The API makes callers choose `scope`; the admin default serves bootstrap code (the
    `create_workspace` command) and keeps the powers tokens had before scopes existed.
    """
    if scope not in TokenScope.values:
        raise ValidationError({"scope": f"One of {', '.join(TokenScope.values)}."})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "This field may not be blank."})
    if len(name) > 100:
        raise ValidationError({"name": "Ensure this field has no more than 100 characters."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "Must be in the future."})
    prefix = TOKEN_PREFIX + _random(8)
    raw = f"{prefix}_{_random(40)}"
    token = APIToken.objects.create(
        workspace_id=member.workspace_id,
        member=member,
        name=name,
        prefix=prefix,
        token_hash=hash_token(raw),
        scope=scope,
        expires_at=expires_at,
    )
    audit_record(
        workspace=member.workspace,
        actor=actor or member,
        action="api_token.create",
        target=token,
        after=_summary(token),
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: APIToken, actor: Member) -> APIToken:
    """Owners/admins may revoke anyone's token; everyone else only their own."""
    if token.member_id != actor.pk and not actor.can_manage:
        raise PermissionDenied("You can only revoke your own tokens.")
    if token.revoked_at is None:
        before = _summary(token)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            workspace=token.workspace,
            actor=actor,
            action="api_token.revoke",
            target=token,
            before=before,
            after=_summary(token),
        )
    return token


@dataclass(frozen=True)
class TokenMatch:
    token_id: int
    workspace_id: int
    member_id: int


def api_token_lookup(raw: str) -> TokenMatch | None:
    """Which live token (and workspace) `raw` is, across all workspaces; None if none."""
    raw = (raw or "").strip()
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    found = system.api_token_lookup(hash_token(raw))
    return TokenMatch(*found) if found else None


def _touch_last_used(workspace_id: int, token_id: int, now: dt.datetime) -> None:
    with workspace_scope(workspace_id):
        APIToken.objects.filter(pk=token_id).update(last_used_at=now)


def api_token_authenticate(match: TokenMatch) -> APIToken | None:
    """Load the token with its member and user, inside the token's workspace, and note its use."""

    def load() -> APIToken | None:
        token = (
            APIToken.objects.select_related("member", "member__user", "member__workspace")
            .filter(pk=match.token_id, revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.member.user.is_active:
            return None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            # After the request's transaction, in its own: an UPDATE here would hold the token
            # row locked for the whole request, and two owners removing each other (each
            # delete cascading to the other's token) would deadlock on it.
            transaction.on_commit(
                lambda: _touch_last_used(match.workspace_id, token.pk, now), robust=True
            )
            token.last_used_at = now
        return token

    if current_workspace_id_or_none() == match.workspace_id:
        return load()
    with workspace_scope(match.workspace_id):
        return load()
