"""django-allauth hooks: sign-up creates or joins a workspace; invited emails count as verified."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction
from django.http import HttpRequest

from workspaces.middleware import SESSION_KEY
from workspaces.services.accounts import user_onboard

# The invitation link a logged-out visitor opened: {"token", "email", "workspace_name"}.
PENDING_INVITATION_KEY = "alephant_pending_invitation"


def pending_invitation(request: HttpRequest) -> dict | None:
    value = request.session.get(PENDING_INVITATION_KEY)
    return value if isinstance(value, dict) and value.get("token") else None


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        if not commit:
            return super().save_user(request, user, form, commit=False)
        pending = pending_invitation(request) or {}
        # One transaction: a user without their first workspace is never left behind.
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=True)
            member = user_onboard(
                user=user,
                workspace_name=form.cleaned_data.get("workspace_name", ""),
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
