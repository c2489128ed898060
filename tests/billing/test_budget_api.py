"""/api/v1/budgets, /alert-channels, /alerts, /guardrails: role matrix, scope validation,
cross-tenant 404s with nothing changed, audit log, snapshot republished on commit."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from billing.models import Alert, AlertChannel, Budget
from gateway.services.keys import gateway_key_create
from workspaces.models import AuditLog
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

ROLES = ["owner", "admin", "finance", "member", "outsider"]


class Api:
    def __init__(self, tokens):
        self.tokens = tokens
        self.client = Client()

    def __call__(self, role, method, path, data=None):
        kwargs = {"HTTP_AUTHORIZATION": f"Bearer {self.tokens[role]}"}
        if data is not None:
            kwargs.update(data=json.dumps(data), content_type="application/json")
        return getattr(self.client, method)(path, **kwargs)


@pytest.fixture
def api(cast):
    tokens = {}
    for role in ROLES:
        member = cast.by_role(role)
        with workspace_scope(member.workspace_id):
            _, tokens[role] = api_token_create(member=member, name=f"{role} token")
    return Api(tokens)


def _count(model, workspace):
    with workspace_scope(workspace.pk):
        return model.objects.filter(workspace=workspace).count()


def test_create_budget_validates_scope_and_publishes(
    cast, api, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        r = api(
            "finance",
            "post",
            "/api/v1/budgets/",
            {
                "scope_type": "member",
                "scope_id": cast.member.pk,
                "amount_usd": "25.50",
                "period": "month",
                "hard_stop": True,
            },
        )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["amount_usd"] == "25.500000" and body["ladder"] == [50, 75, 90, 100]
    assert body["throttle_at"] == 90 and body["status"]["used"] == "0.00"  # exact
    assert body["status"]["remaining"] == "25.50" and body["status"]["resets_at"]
    # The workspace snapshot the gateway reads now carries the budget.
    snapshot = json.loads(redis_client.get(f"alephant:ws:{cast.workspace.pk}"))
    entry = next(b for b in snapshot["budgets"] if b["id"] == body["id"])
    assert entry["limit"] == 25_500_000_000 and entry["scope_type"] == "member"
    assert snapshot["settings"]["loop_breaker"] is False
    with workspace_scope(cast.workspace.pk):
        assert AuditLog.objects.filter(action="budget.create", target_id=str(body["id"])).exists()

    # Workspace scope defaults to the caller's workspace; quotas use limit_count.
    r = api(
        "admin",
        "post",
        "/api/v1/budgets/",
        {
            "scope_type": "workspace",
            "metric": "requests",
            "limit_count": 10000,
            "period": "month",
        },
    )
    assert r.status_code == 201 and r.json()["scope_id"] == cast.workspace.pk

    for bad in (
        {"scope_type": "member", "scope_id": cast.outsider.pk, "amount_usd": "5"},  # foreign
        {"scope_type": "member", "scope_id": 999999, "amount_usd": "5"},  # unknown
        {"scope_type": "workspace", "scope_id": cast.other_workspace.pk, "amount_usd": "5"},
        {"scope_type": "planet", "scope_id": 1, "amount_usd": "5"},
        {"scope_type": "member", "scope_id": cast.member.pk},  # no amount
        {"scope_type": "member", "scope_id": cast.member.pk, "amount_usd": "-1"},
        {"scope_type": "member", "scope_id": cast.member.pk, "amount_usd": "5", "ladder": [90, 50]},
        {"scope_type": "workspace", "metric": "request_usd", "amount_usd": "1"},  # key/agent only
    ):
        r = api("owner", "post", "/api/v1/budgets/", bad)
        assert r.status_code == 400, (bad, r.content)
        assert r.json()["error"]["type"] == "validation_error"
    assert _count(Budget, cast.workspace) == 2


def test_role_matrix(cast, api):
    with workspace_scope(cast.workspace.pk):
        agent = agent_create(workspace=cast.workspace, slug="bot", name="Bot", owner=cast.member)
        key, _ = gateway_key_create(workspace=cast.workspace, name="k", member=cast.admin)
    made = {}
    for role in ("owner", "admin", "finance"):
        r = api(
            role,
            "post",
            "/api/v1/budgets/",
            {"scope_type": "workspace", "amount_usd": "100", "period": "day"},
        )
        assert r.status_code == 201
        made[role] = r.json()["id"]
    r = api("member", "post", "/api/v1/budgets/", {"scope_type": "workspace", "amount_usd": "1"})
    assert r.status_code == 403
    own = api(
        "owner",
        "post",
        "/api/v1/budgets/",
        {"scope_type": "agent", "scope_id": agent.pk, "amount_usd": "3"},
    ).json()["id"]
    other = api(
        "owner",
        "post",
        "/api/v1/budgets/",
        {"scope_type": "key", "scope_id": key.pk, "amount_usd": "3"},
    ).json()["id"]

    # A member reads the budgets on their own chain, not another member's key budget.
    listed = {b["id"] for b in api("member", "get", "/api/v1/budgets/").json()["results"]}
    assert own in listed and made["owner"] in listed and other not in listed
    assert api("member", "get", f"/api/v1/budgets/{other}/").status_code == 404
    assert api("member", "patch", f"/api/v1/budgets/{own}/", {"amount_usd": "9"}).status_code == 403
    assert api("member", "delete", f"/api/v1/budgets/{own}/").status_code == 403

    r = api("finance", "patch", f"/api/v1/budgets/{own}/", {"amount_usd": "4", "throttle_rpm": 5})
    assert r.status_code == 200 and r.json()["amount_usd"] == "4.000000"
    assert api("admin", "delete", f"/api/v1/budgets/{other}/").status_code == 204
    with workspace_scope(cast.workspace.pk):
        actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"budget.create", "budget.update", "budget.delete"} <= actions

    # Channels and guardrails: members may not.
    assert api("member", "get", "/api/v1/alert-channels/").status_code == 403
    assert api("finance", "get", "/api/v1/alert-channels/").status_code == 200
    assert api("member", "patch", "/api/v1/guardrails/", {"loop_breaker": True}).status_code == 403
    assert api("finance", "get", "/api/v1/guardrails/").json()["loop_breaker"] is False
    r = api("admin", "patch", "/api/v1/guardrails/", {"loop_breaker": True, "loop_max_repeats": 5})
    assert r.status_code == 200 and r.json()["loop_breaker"] is True


def test_cross_tenant_is_404_and_changes_nothing(cast, api):
    with workspace_scope(cast.workspace.pk):
        budget = Budget.objects.create(
            workspace=cast.workspace,
            scope_type="workspace",
            scope_id=cast.workspace.pk,
            amount_usd="10",
        )
        channel = AlertChannel.objects.create(workspace=cast.workspace, kind="email", name="m")
        alert = Alert.objects.create(
            workspace=cast.workspace, kind="test", dedupe_key="t1", title="t"
        )
    for path in (
        f"/api/v1/budgets/{budget.pk}/",
        f"/api/v1/alert-channels/{channel.pk}/",
        f"/api/v1/alerts/{alert.pk}/",
    ):
        assert api("outsider", "get", path).status_code == 404
        assert api("outsider", "patch", path, {"amount_usd": "99999", "name": "x"}).status_code in (
            404,
            405,
        )
        assert api("outsider", "delete", path).status_code in (404, 405)
    assert api("outsider", "post", f"/api/v1/alert-channels/{channel.pk}/test/").status_code == 404
    assert api("outsider", "get", "/api/v1/budgets/").json()["results"] == []
    # An outsider cannot point a budget of their own workspace at our member either.
    r = api(
        "outsider",
        "post",
        "/api/v1/budgets/",
        {"scope_type": "member", "scope_id": cast.member.pk, "amount_usd": "1"},
    )
    assert r.status_code == 400
    with workspace_scope(cast.workspace.pk):
        budget.refresh_from_db()
        channel.refresh_from_db()
        assert budget.amount_usd == 10 and channel.name == "m"
        assert Alert.objects.filter(workspace=cast.workspace).count() == 1
        assert not Alert.objects.filter(kind="test").exclude(pk=alert.pk).exists()
    assert _count(Budget, cast.other_workspace) == 0


def test_alert_channels_api_with_send_test(cast, api):
    r = api(
        "owner",
        "post",
        "/api/v1/alert-channels/",
        {"kind": "email", "name": "Finance mail", "emails": ["cfo@x.example"]},
    )
    assert r.status_code == 201, r.content
    channel_id = r.json()["id"]
    r = api("finance", "post", f"/api/v1/alert-channels/{channel_id}/test/")
    assert r.status_code == 200 and r.json() == {
        "ok": True,
        "error": "",
        "alert_id": r.json()["alert_id"],
    }
    from django.core import mail

    assert "cfo@x.example" in mail.outbox[-1].to
    r = api("owner", "post", "/api/v1/alert-channels/", {"kind": "webhook", "name": "hook"})
    assert r.status_code == 400  # url required
    r = api(
        "owner",
        "post",
        "/api/v1/alert-channels/",
        {"kind": "webhook", "name": "hook", "url": "https://hooks.example/a"},
    )
    assert r.status_code == 201 and len(r.json()["secret"]) > 20
    listed = api("admin", "get", "/api/v1/alert-channels/").json()["results"]
    assert all("secret" not in c for c in listed)
    alerts = api("finance", "get", "/api/v1/alerts/").json()["results"]
    assert alerts[0]["kind"] == "test" and alerts[0]["deliveries"][0]["status"] == "sent"
    assert api("member", "get", "/api/v1/alerts/").json()["results"] == []  # not their budget


def test_guardrails_and_budgets_reach_the_workspace_snapshot(scoped):
    from billing.services.budgets import budget_create, guardrails_update
    from gateway.snapshots import build_workspace_snapshot

    ws = scoped.workspace
    guardrails_update(
        workspace=ws, actor=scoped.owner, loop_breaker=True, loop_max_repeats=4, rpm_floor=7
    )
    budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="agent",
        scope_id=_agent(scoped).pk,
        metric="rpm",
        limit_count=30,
    )
    budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="workspace",
        amount_usd="12.5",
        period="week",
        model_filter="anthropic/*",
        hard_stop=False,
    )
    snapshot = build_workspace_snapshot(ws.pk)
    assert snapshot["rpm_floor"] == 7
    assert snapshot["settings"]["loop_breaker"] is True
    assert snapshot["settings"]["loop_max_repeats"] == 4
    rpm, money = snapshot["budgets"]
    assert rpm["metric"] == "rpm" and rpm["limit"] == 30 and rpm["scope_type"] == "agent"
    assert money["limit"] == 12_500_000_000 and money["model"] == "anthropic/*"
    assert money["hard_stop"] is False and money["period"] == "week"


def _agent(scoped):
    return agent_create(
        workspace=scoped.workspace, slug="snap-bot", name="Bot", owner=scoped.member
    )
