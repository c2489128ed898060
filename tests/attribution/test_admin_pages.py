"""Admin pages: role matrix, cross-tenant 404, each action through the owning service + audit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from workspaces.models import AuditLog
from workspaces.tenancy import workspace_scope

GET_PAGES = [
    "/manage/",
    "/manage/provider-keys/",
    "/manage/gateway-keys/",
    "/manage/budgets/",
    "/manage/channels/",
]
# role -> expected GET status per page
EXPECTED = {
    "owner": [200, 200, 200, 200, 200],
    "admin": [200, 200, 200, 200, 200],
    "finance": [200, 403, 200, 200, 200],  # provider keys: owners and admins, as the API
    "member": [200, 403, 200, 403, 403],
}


def _login(client, member):
    client.force_login(member.user)
    return client


def _audit_actions(workspace) -> list[str]:
    with workspace_scope(workspace.pk):
        return list(AuditLog.objects.filter(workspace=workspace).values_list("action", flat=True))


@pytest.mark.parametrize("role", ["owner", "admin", "finance", "member"])
def test_role_matrix_get(client, world, role):
    _login(client, world.cast.by_role(role))
    got = [client.get(url).status_code for url in GET_PAGES]
    assert got == EXPECTED[role]


def test_provider_key_lifecycle(client, world, simulator):
    c = world.cast
    _login(client, c.admin)
    response = client.post(
        "/manage/provider-keys/",
        {
            "provider": "openai",
            "name": "sim",
            "secret": "sk-test-123456789abcd",
            "base_url": simulator + "/v1",
            "timeout_s": 30,
        },
    )
    assert response.status_code == 302
    page = client.get("/manage/provider-keys/").content.decode()
    assert "abcd" in page and "sk-test-123456789abcd" not in page
    from gateway.models import ProviderCredential

    with workspace_scope(c.workspace.pk):
        cred = ProviderCredential.objects.get(name="sim")
    page = client.post(f"/manage/provider-keys/{cred.pk}/test/", follow=True).content.decode()
    assert "The provider accepted the key." in page
    client.post(f"/manage/provider-keys/{cred.pk}/rotate/", {"secret": "sk-new-000000000wxyz"})
    with workspace_scope(c.workspace.pk):
        cred.refresh_from_db()
    assert cred.last4 == "wxyz"
    # bad input: a clear form error, nothing stored
    bad = client.post("/manage/provider-keys/", {"provider": "openai", "name": "", "secret": ""})
    assert bad.status_code == 400 and "This field is required" in bad.content.decode()
    client.post(f"/manage/provider-keys/{cred.pk}/delete/")
    with workspace_scope(c.workspace.pk):
        assert not ProviderCredential.objects.filter(pk=cred.pk).exists()
    actions = _audit_actions(c.workspace)
    for action in (
        "provider_key.create",
        "provider_key.test",
        "provider_key.update",
        "provider_key.delete",
    ):
        assert action in actions


def test_finance_reads_but_cannot_change_keys(client, world):
    c = world.cast
    _login(client, c.finance)
    assert (
        client.post(
            "/manage/provider-keys/", {"provider": "openai", "name": "x", "secret": "sk-1234567890"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/manage/gateway-keys/", {"name": "x", "holder": f"member:{c.finance.pk}"}
        ).status_code
        == 403
    )
    assert client.post(f"/manage/gateway-keys/{world.key.pk}/revoke/").status_code == 403
    assert world.key.prefix in client.get("/manage/gateway-keys/").content.decode()


def test_gateway_key_shown_once_limits_and_revoke(client, world):
    c = world.cast
    _login(client, c.admin)
    page = client.post(
        "/manage/gateway-keys/",
        {
            "name": "ci",
            "holder": f"agent:{world.agent.pk}",
            "rpm": 60,
            "allowed_models": "gpt-4o",
        },
    ).content.decode()
    import re

    raw = re.search(r'<code id="new-key">(alph_[^<]+)</code>', page).group(1)
    assert raw not in client.get("/manage/gateway-keys/").content.decode()
    from gateway.models import GatewayKey

    with workspace_scope(c.workspace.pk):
        key = GatewayKey.objects.get(name="ci")
    assert (key.rpm, key.allowed_models, key.agent_id) == (60, ["gpt-4o"], world.agent.pk)
    client.post(f"/manage/gateway-keys/{key.pk}/", {"rpm": 5, "tpm": 1000})
    client.post(f"/manage/gateway-keys/{key.pk}/revoke/")
    with workspace_scope(c.workspace.pk):
        key.refresh_from_db()
    assert (key.rpm, key.tpm, key.status) == (5, 1000, "revoked")
    assert {"gateway_key.create", "gateway_key.update", "gateway_key.revoke"} <= set(
        _audit_actions(c.workspace)
    )


def test_member_sees_and_issues_only_own_keys(client, world):
    c = world.cast
    from gateway.services.keys import gateway_key_create

    with workspace_scope(c.workspace.pk):
        admin_key, _ = gateway_key_create(workspace=c.workspace, name="admin-only", member=c.admin)
    _login(client, c.member)
    page = client.get("/manage/gateway-keys/").content.decode()
    assert world.key.prefix in page and admin_key.prefix not in page
    assert f"member:{c.admin.pk}" not in page
    assert client.post(f"/manage/gateway-keys/{admin_key.pk}/revoke/").status_code == 404
    bad = client.post("/manage/gateway-keys/", {"name": "steal", "holder": f"member:{c.admin.pk}"})
    assert bad.status_code == 400
    ok = client.post("/manage/gateway-keys/", {"name": "mine", "holder": f"member:{c.member.pk}"})
    assert ok.status_code == 200 and "new-key" in ok.content.decode()


def test_budget_create_edit_delete_by_finance(client, world):
    c = world.cast
    from billing.models import Budget

    _login(client, c.finance)
    response = client.post(
        "/manage/budgets/",
        {
            "name": "member cap",
            "scope": f"member:{c.member.pk}",
            "metric": "usd",
            "amount_usd": "10",
            "period": "month",
            "ladder": "50, 80, 100",
            "throttle_at": 90,
            "throttle_rpm": 5,
            "hard_stop": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with workspace_scope(c.workspace.pk):
        budget = Budget.objects.get(name="member cap")
    assert (budget.amount_usd, budget.ladder, budget.hard_stop) == (
        Decimal("10"),
        [50, 80, 100],
        True,
    )
    page = client.get("/manage/budgets/").content.decode()
    assert "$1.75 of $10.00" in page  # the member's spend this month, from the rollups
    assert client.get("/budgets/").status_code == 200
    bad = client.post(
        "/manage/budgets/",
        {"scope": f"member:{c.member.pk}", "metric": "usd", "period": "month", "ladder": "90, 50"},
    )
    assert bad.status_code == 400
    client.post(
        f"/manage/budgets/{budget.pk}/",
        {
            **{
                k: v
                for k, v in {
                    "name": "member cap",
                    "scope": f"member:{c.member.pk}",
                    "metric": "usd",
                    "amount_usd": "20",
                    "period": "day",
                    "ladder": "50, 100",
                    "throttle_at": 90,
                    "throttle_rpm": 5,
                }.items()
            },
        },
    )
    with workspace_scope(c.workspace.pk):
        budget.refresh_from_db()
        assert (budget.amount_usd, budget.period, budget.hard_stop) == (Decimal(20), "day", False)
    client.post(f"/manage/budgets/{budget.pk}/delete/")
    with workspace_scope(c.workspace.pk):
        assert not Budget.objects.filter(pk=budget.pk).exists()
    assert {"budget.create", "budget.update", "budget.delete"} <= set(_audit_actions(c.workspace))


def test_channels_add_test_remove(client, world, mailoutbox):
    c = world.cast
    from billing.models import AlertChannel

    _login(client, c.finance)
    assert (
        client.post(
            "/manage/channels/",
            {"kind": "email", "name": "finance mail", "emails": "cfo@a.example"},
        ).status_code
        == 200
    )
    with workspace_scope(c.workspace.pk):
        channel = AlertChannel.objects.get(name="finance mail")
    page = client.post(f"/manage/channels/{channel.pk}/test/", follow=True).content.decode()
    assert "Test alert sent" in page
    assert any("cfo@a.example" in m.to for m in mailoutbox)
    client.post(f"/manage/channels/{channel.pk}/delete/")
    with workspace_scope(c.workspace.pk):
        assert not AlertChannel.objects.filter(pk=channel.pk).exists()
    assert {"alert_channel.create", "alert_channel.test", "alert_channel.delete"} <= set(
        _audit_actions(c.workspace)
    )


def test_cross_tenant_admin_objects_are_404_and_unchanged(client, world):
    c = world.cast
    from billing.models import AlertChannel
    from billing.services.alerts import alert_channel_create
    from billing.services.budgets import budget_create

    with workspace_scope(c.other_workspace.pk):
        b_budget = budget_create(
            workspace=c.other_workspace,
            actor=None,
            scope_type="workspace",
            scope_id=c.other_workspace.pk,
            metric="usd",
            amount_usd="5",
            period="month",
        )
        b_channel = alert_channel_create(
            workspace=c.other_workspace, actor=None, kind="email", name="b mail"
        )
    _login(client, c.owner)
    for url in (
        f"/manage/budgets/{b_budget.pk}/",
        f"/manage/budgets/{b_budget.pk}/delete/",
        f"/manage/channels/{b_channel.pk}/test/",
        f"/manage/channels/{b_channel.pk}/delete/",
        f"/manage/gateway-keys/{world.outsider_key.pk}/",
        f"/manage/gateway-keys/{world.outsider_key.pk}/revoke/",
    ):
        assert client.post(url).status_code == 404, url
    assert client.get(f"/manage/budgets/{b_budget.pk}/").status_code == 404
    from gateway.models import GatewayKey

    with workspace_scope(c.other_workspace.pk):
        assert AlertChannel.objects.filter(pk=b_channel.pk).exists()
        assert GatewayKey.objects.get(pk=world.outsider_key.pk).revoked_at is None
        from billing.models import Budget

        assert Budget.objects.get(pk=b_budget.pk).amount_usd == Decimal(5)


def test_key_tables_export_as_csv(client, world):
    _login(client, world.cast.finance)
    body = client.get("/manage/gateway-keys/?export=gateway-keys").content.decode()
    assert body.splitlines()[0].startswith("name,prefix,member")
    assert world.key.prefix in body and world.outsider_key.prefix not in body
    assert client.get("/manage/provider-keys/?export=provider-keys").status_code == 403
    _login(client, world.cast.admin)
    assert client.get("/manage/provider-keys/?export=provider-keys").status_code == 200
    _login(client, world.cast.member)
    assert client.get("/manage/provider-keys/?export=provider-keys").status_code == 403
