"""The audit log: every admin action appends an entry; nobody can edit or delete one."""

from __future__ import annotations

import pytest
from django.db import ProgrammingError, connection, transaction

from workspaces.models import AuditLog
from workspaces.tenancy import workspace_scope


def _actions(cast) -> list[str]:
    with workspace_scope(cast.workspace.pk):
        return list(AuditLog.objects.order_by("id").values_list("action", flat=True))


def test_admin_actions_are_recorded_with_actor_target_and_summary(api, cast, world):
    before = len(_actions(cast))
    dept = api.call("admin", "post", "/api/v1/departments/", {"name": "Ops"}).json()
    api.call("admin", "patch", f"/api/v1/members/{cast.member.pk}/", {"role": "finance"})
    api.call("admin", "post", "/api/v1/invitations/", {"email": "z@a.example"})
    key = api.call(
        "admin", "post", "/api/v1/gateway-keys/", {"name": "k", "member_id": cast.admin.pk}
    ).json()
    api.call("admin", "post", f"/api/v1/gateway-keys/{key['id']}/revoke/")
    api.call(
        "admin",
        "patch",
        f"/api/v1/provider-keys/{world.provider_key.pk}/",
        {"secret": "sk-new-secret-987654321"},
    )
    api.call("admin", "delete", f"/api/v1/departments/{dept['id']}/")
    assert _actions(cast)[before:] == [
        "department.create",
        "member.update",
        "invitation.create",
        "gateway_key.create",
        "gateway_key.revoke",
        "provider_key.update",
        "department.delete",
    ]
    page = api.call("owner", "get", "/api/v1/audit-log/?action=member.update").json()
    (entry,) = page["results"]
    assert entry["actor_member_id"] == cast.admin.pk
    assert entry["actor_label"] == cast.admin.user.email
    assert entry["target_id"] == str(cast.member.pk)
    assert entry["before"]["role"] == "member" and entry["after"]["role"] == "finance"
    secret_entry = api.call("owner", "get", "/api/v1/audit-log/?action=provider_key.update").json()[
        "results"
    ][0]
    assert secret_entry["after"]["secret"] == "(replaced)"
    assert "sk-new-secret" not in str(secret_entry)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_api_cannot_write_the_audit_log(api, cast, world, method):
    with workspace_scope(cast.workspace.pk):
        entry = AuditLog.objects.first()
    path = "/api/v1/audit-log/" if method == "post" else f"/api/v1/audit-log/{entry.pk}/"
    assert api.call("owner", method, path, {"action": "x"}).status_code == 405


def test_app_role_cannot_update_or_delete_audit_rows(cast, world):
    with workspace_scope(cast.workspace.pk):
        entry = AuditLog.objects.first()
        for sql in (
            "UPDATE workspaces_auditlog SET action = 'forged'",
            "DELETE FROM workspaces_auditlog",
        ):
            with (
                pytest.raises(ProgrammingError, match="permission denied"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql)
        with pytest.raises(PermissionError):
            entry.delete()
        entry.action = "forged"
        with pytest.raises(PermissionError):
            entry.save()
        assert AuditLog.objects.get(pk=entry.pk).action != "forged"
