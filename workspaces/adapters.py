"""django-allauth hooks: who may sign up (ALEPHANT_SIGNUP), sign-up creates or joins a
workspace, invited emails count as verified; TOTP seeds are stored sealed under the master key."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.http import HttpRequest

from core import vault
from workspaces.middleware import SESSION_KEY
from workspaces.models import User
from workspaces.services.accounts import user_onboard
from workspaces.services.invitations import InvitationError, invitation_check

TOTP_PURPOSE = "allauth-totp"
# Serialises the bootstrap sign-up: two strangers racing for an empty instance get one owner.
_BOOTSTRAP_LOCK = 0x616C_6570  # "alep"

# The invitation link a logged-out visitor opened: {"token", "email", "workspace_name"}.
PENDING_INVITATION_KEY = "alephant_pending_invitation"


def pending_invitation(request: HttpRequest) -> dict | None:
    value = request.session.get(PENDING_INVITATION_KEY)
    return value if isinstance(value, dict) and value.get("token") else None


def _live_invitation(request: HttpRequest) -> dict | None:
    pending = pending_invitation(request)
    if pending is None:
        return None
    try:
        invitation_check(token=pending["token"])
    except InvitationError:
        return None
    return pending


def signup_allowed(request: HttpRequest) -> bool:
    """open: anyone; invite: the first account of an empty instance, then invitation links only;
    closed: nobody (invited people who already have an account accept by signing in)."""
    mode = settings.ALEPHANT_SIGNUP
    if mode == "open":
        return True
    if mode == "closed":
        return False
    return not User.objects.exists() or _live_invitation(request) is not None


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return signup_allowed(request)

    def clean_email(self, email: str) -> str:
        email = super().clean_email(email)
        pending = _live_invitation(self.request) if settings.ALEPHANT_SIGNUP == "invite" else None
        # An invitation link admits the address it was sent to, not whoever holds the link.
        if pending and User.objects.exists() and pending["email"].lower() != email.lower():
            raise forms.ValidationError("Sign up with the address this invitation was sent to.")
        return email

    def save_user(self, request, user, form, commit=True):
        if not commit:
            return super().save_user(request, user, form, commit=False)
        pending = pending_invitation(request) or {}
        # One transaction: a user without their first workspace is never left behind.
        with transaction.atomic():
            if settings.ALEPHANT_SIGNUP == "invite" and not pending:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_BOOTSTRAP_LOCK])
                if User.objects.exists():  # someone else bootstrapped meanwhile
                    raise PermissionDenied("Sign-up is by invitation only.")
            user = super().save_user(request, user, form, commit=True)
            member = user_onboard(
                user=user,
                workspace_name=form.cleaned_data.get("workspace_name", ""),
                time_zone=form.cleaned_data.get("time_zone") or "UTC",
                invitation_token=pending.get("token", ""),
            )
        request.session[SESSION_KEY] = member.workspace_id
        if pending and member.workspace_id != pending.get("workspace_id"):
            return user  # keep the pending link: the invite page explains the email mismatch
        if pending:
            # Accepted: the link went to this address, so allauth marks it verified.
            self.stash_verified_email(request, user.email)
        request.session.pop(PENDING_INVITATION_KEY, None)
        return user

    def is_email_verified(self, request: HttpRequest, email: str) -> bool:
        # Opening the emailed link proves the visitor reads that mailbox.
        pending = pending_invitation(request)
        if pending and pending.get("email", "").lower() == (email or "").lower():
            return True
        return super().is_email_verified(request, email)


class MFAAdapter(DefaultMFAAdapter):
    """allauth stores TOTP seeds through these two methods: sealed with a key HKDF-derived from
    the master key for this purpose only (core/vault.py); seeds stored before stay readable."""

    def encrypt(self, text: str) -> str:
        return vault.seal_for_purpose(TOTP_PURPOSE, text)

    def decrypt(self, encrypted_text: str) -> str:
        return vault.open_for_purpose(TOTP_PURPOSE, encrypted_text)
