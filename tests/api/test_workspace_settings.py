"""`/api/v1/workspace/`: every member reads the workspace's settings, owners and admins change
name and time zone (audited, the same service as the /settings/ page); another workspace's
token changes only its own workspace."""

from __future__ import annotations

import pytest

from workspaces.models import AuditLog, Workspace
from workspaces.tenancy import workspace_scope


def _ws(ws):
    with workspace_scope(ws.pk):
        return Workspace.objects.get(pk=ws.pk)


@pytest.mark.parametrize("role", ["owner", "admin", "finance", "member"])
def test_every_member_reads_the_settings(api, cast, role):
    body = api.call(role, "get", "/api/v1/workspace/").json()
    assert body["id"] == cast.workspace.pk and body["time_zone"] == "UTC"


@pytest.mark.parametrize(
    "role,status", [("owner", 200), ("admin", 200), ("finance", 403), ("member", 403)]
)
def test_managers_change_name_and_time_zone(api, cast, role, status):
    r = api.call(role, "patch", "/api/v1/workspace/", {"time_zone": "America/New_York"})
    assert r.status_code == status
    ws = _ws(cast.workspace)
    assert (ws.time_zone == "America/New_York") == (status == 200)
    with workspace_scope(ws.pk):
        assert AuditLog.objects.filter(action="workspace.update").exists() == (status == 200)


def test_bad_zone_is_400_and_outsider_changes_only_their_own(api, cast):
    bad = api.call("owner", "patch", "/api/v1/workspace/", {"time_zone": "Mars/Olympus"})
    assert bad.status_code == 400 and "time_zone" in bad.content.decode()
    r = api.call("outsider", "patch", "/api/v1/workspace/", {"name": "Beta 2"})
    assert r.status_code == 200 and r.json()["id"] == cast.other_workspace.pk
    assert _ws(cast.workspace).name == "Acme" and _ws(cast.other_workspace).name == "Beta 2"
