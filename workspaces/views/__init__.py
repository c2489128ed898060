"""Workspace pages. Thin: parse input with a form, call a service or selector, render.

`WorkspaceScopeMiddleware` has already set `request.workspace` / `request.member` and runs the
view inside the workspace's transaction scope; ids from the URL go through `workspaces.access`.

One module per group of pages; `workspaces/urls.py` reaches them through this package.
"""

from workspaces.views.account import (
    home,
    workspace_new,
    workspace_switch,
)
from workspaces.views.members import (
    invitation_accept_view,
    invitation_revoke_view,
    member_invite,
    member_limits_view,
    member_remove_view,
    member_update_view,
    members,
)
from workspaces.views.organization import (
    agent_detail,
    agent_new,
    agents,
    department_detail,
    department_new,
    departments,
)
from workspaces.views.settings import (
    api_token_revoke_view,
    api_tokens_page,
    audit_page,
    settings_page,
)

__all__ = [
    "agent_detail",
    "agent_new",
    "agents",
    "api_token_revoke_view",
    "api_tokens_page",
    "audit_page",
    "department_detail",
    "department_new",
    "departments",
    "home",
    "invitation_accept_view",
    "invitation_revoke_view",
    "member_invite",
    "member_limits_view",
    "member_remove_view",
    "member_update_view",
    "members",
    "settings_page",
    "workspace_new",
    "workspace_switch",
]
