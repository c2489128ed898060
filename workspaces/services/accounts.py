"""What happens right after someone signs up: join the workspace that invited them, or get one."""

from __future__ import annotations

from workspaces.models import Member, User
from workspaces.services.invitations import InvitationError, invitation_accept
from workspaces.services.workspaces import workspace_create
from workspaces.tenancy import workspace_scope

# Shared mailbox providers: their domain says nothing about the company.
_PERSONAL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "aol.com",
        "fastmail.com",
    }
)


def default_workspace_name(email: str) -> str:
    """`ada@acme-labs.io` -> "Acme Labs"; `ada@gmail.com` -> "Ada's workspace"."""
    local, _, domain = email.strip().lower().partition("@")
    if domain and domain not in _PERSONAL_DOMAINS:
        label = domain.split(".")[0].replace("-", " ").replace("_", " ").strip()
        if label:
            return label.title()[:120]
    name = local.split("+")[0].replace(".", " ").replace("_", " ").strip() or "My"
    return f"{name.title()}'s workspace"[:120]


def user_onboard(
    *, user: User, workspace_name: str = "", invitation_token: str = "", time_zone: str = "UTC"
) -> Member:
    """Give a freshly signed-up user their first membership.

    An invited sign-up (the token from their link, the invited email) joins the inviting
    workspace and gets no personal workspace; anyone else becomes the owner of a new one.
    """
    if invitation_token:
        try:
            return invitation_accept(token=invitation_token, user=user)
        except InvitationError:
            pass  # signed up with another address, or the link died meanwhile
    name = workspace_name.strip() or default_workspace_name(user.email)
    workspace = workspace_create(name=name, owner=user, time_zone=time_zone)
    with workspace_scope(workspace.pk):
        return Member.objects.select_related("workspace").get(workspace=workspace, user=user)
