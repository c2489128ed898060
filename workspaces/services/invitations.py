"""Invitations: an owner or admin invites an email address with a role (and a department).

The link carries a random token; only its SHA-256 is stored, so a database leak does not leak
working links. A link is single use, expires after `INVITATION_TTL_HOURS`, and only the user
whose email is the invited one may accept it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from workspaces import system
from workspaces.models import Department, Invitation, Member, Role, User, Workspace
from workspaces.services.audit import audit_record
from workspaces.tenancy import workspace_scope

logger = logging.getLogger(__name__)


class InvitationError(Exception):
    """Why a link cannot be accepted; `reason` picks the page the visitor sees."""

    INVALID = "invalid"
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"
    WRONG_EMAIL = "wrong_email"

    def __init__(self, reason: str, invitation: Invitation | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.invitation = invitation


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown once (emailed); never stored

    @property
    def url(self) -> str:
        return invitation_url(self.token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_url(token: str) -> str:
    path = reverse("invitation_accept", kwargs={"token": token})
    return settings.SITE_URL.rstrip("/") + path


def _check_invitation(
    *,
    workspace: Workspace,
    invited_by: Member,
    email: str,
    role: str,
    department: Department | None,
) -> None:
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError({"email": "Enter a valid email address."}, code="invalid") from exc
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."}, code="invalid_role")
    if role == Role.OWNER and invited_by.role != Role.OWNER:
        raise ValidationError({"role": "Only an owner can invite another owner."}, code="role")
    if department is not None and department.workspace_id != workspace.pk:
        raise ValidationError({"department": "Unknown department."}, code="invalid_department")
    if Member.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise ValidationError({"email": "This person is already a member."}, code="member")


def invitation_create(
    *,
    workspace: Workspace,
    invited_by: Member,
    email: str,
    role: str,
    department: Department | None = None,
) -> IssuedInvitation:
    """Create a pending invitation and email its link (after the transaction commits).

    Raises `ValidationError` (keyed by field) for a malformed email, an unknown role, a
    department of another workspace, an address that is already a member or already has a
    pending invitation.
    """
    email = (email or "").strip().lower()
    _check_invitation(
        workspace=workspace, invited_by=invited_by, email=email, role=role, department=department
    )
    now = timezone.now()
    # An expired link still counts as "pending" for the unique constraint: retire it, so the
    # admin can simply invite again.
    Invitation.objects.filter(
        workspace=workspace,
        email__iexact=email,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__lte=now,
    ).update(revoked_at=now)

    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                workspace=workspace,
                email=email,
                role=role,
                department=department,
                token_hash=hash_token(token),
                invited_by=invited_by,
                created_at=now,
                expires_at=now + timedelta(hours=settings.INVITATION_TTL_HOURS),
            )
    except IntegrityError as exc:  # the partial unique index: one pending link per address
        raise ValidationError(
            {"email": "This address already has a pending invitation."}, code="duplicate"
        ) from exc

    issued = IssuedInvitation(invitation=invitation, token=token)
    context = {
        "workspace_name": workspace.name,
        "inviter": invited_by.user.email,
        "role": invitation.get_role_display(),
        "url": issued.url,
        "expires_at": invitation.expires_at,
    }
    transaction.on_commit(lambda: _send_invitation_email(email, context))
    return issued


def _send_invitation_email(email: str, context: dict) -> None:
    subject = render_to_string("workspaces/email/invitation_subject.txt", context).strip()
    body = render_to_string("workspaces/email/invitation_message.txt", context)
    try:
        send_mail(subject, body, None, [email])
    except Exception:  # the invitation exists; the admin sees the link and can share it
        logger.exception("invitation email to %s failed", email)


def invitation_lookup(*, token: str) -> Invitation | None:
    """The invitation behind a link token (from any workspace), via the narrow system path.

    The row is loaded inside its own workspace scope, with workspace and department attached.
    """
    found = system.invitation_workspace(hash_token(token or ""))
    if found is None:
        return None
    invitation_id, workspace_id = found
    with workspace_scope(workspace_id):
        return (
            Invitation.objects.select_related("workspace", "department", "accepted_by")
            .filter(pk=invitation_id)
            .first()
        )


def _check_acceptable(invitation: Invitation, user: User | None) -> None:
    if invitation.revoked_at:
        raise InvitationError(InvitationError.REVOKED, invitation)
    if invitation.accepted_at:
        raise InvitationError(InvitationError.USED, invitation)
    if invitation.expires_at <= timezone.now():
        raise InvitationError(InvitationError.EXPIRED, invitation)
    if user is not None and user.email.lower() != invitation.email.lower():
        raise InvitationError(InvitationError.WRONG_EMAIL, invitation)


def invitation_check(*, token: str, user: User | None = None) -> Invitation:
    """The pending invitation for `token`, or `InvitationError` saying why it can't be used."""
    invitation = invitation_lookup(token=token)
    if invitation is None:
        raise InvitationError(InvitationError.INVALID)
    _check_acceptable(invitation, user)
    return invitation


def invitation_accept(*, token: str, user: User) -> Member:
    """Make `user` a member of the inviting workspace with the invited role and department."""
    found = system.invitation_workspace(hash_token(token or ""))
    if found is None:
        raise InvitationError(InvitationError.INVALID)
    invitation_id, workspace_id = found
    with workspace_scope(workspace_id):
        # Row lock: two tabs accepting the same link at once get one member, one "used".
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("workspace")
            .filter(pk=invitation_id)
            .first()
        )
        if invitation is None:
            raise InvitationError(InvitationError.INVALID)
        _check_acceptable(invitation, user)
        department = invitation.department  # None if it was deleted since (SET_NULL)
        member, created = Member.objects.get_or_create(
            workspace_id=workspace_id,
            user=user,
            defaults={"role": invitation.role, "department": department},
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        if not created:
            logger.info("user %s accepted an invitation to a workspace they were in", user.pk)
        member.workspace = invitation.workspace
        # Every join is in the audit log, by the person who joined.
        audit_record(
            workspace=invitation.workspace,
            actor=member,
            action="invitation.accept",
            target=invitation,
            target_label=invitation.email,
            after={"member_id": member.pk, "role": member.role, "new_member": created},
        )
    return member


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    """Retire a pending link; accepted invitations are history and stay as they are."""
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation
