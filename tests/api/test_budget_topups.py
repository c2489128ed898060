"""Prepaid budgets: top-ups through the API (roles, audit, history, cross-tenant 404) and the
snapshot the gateway reads."""

from __future__ import annotations

from decimal import Decimal

from billing.models import Budget, BudgetTopUp
from billing.services.budgets import budget_create
from billing.snapshots import budgets_section
from workspaces.models import AuditLog
from workspaces.tenancy import workspace_scope


def _prepaid(cast, period="lifetime"):
    with workspace_scope(cast.workspace.pk):
        return budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd=Decimal("10"),
            period=period,
        )


def test_top_up_grows_the_budget_audited_with_history(cast, api):
    budget = _prepaid(cast)
    url = f"/api/v1/budgets/{budget.pk}/top-up/"
    r = api.call("finance", "post", url, {"amount_usd": "5.5", "note": "PO 1234"})
    assert r.status_code == 201, r.content
    assert r.json()["balance_after_usd"] == "15.500000"
    assert api.call("member", "post", url, {"amount_usd": "1"}).status_code == 403
    history = api.call("member", "get", f"/api/v1/budgets/{budget.pk}/top-ups/")
    assert history.status_code == 200 and history.json()[0]["note"] == "PO 1234"
    with workspace_scope(cast.workspace.pk):
        assert Budget.objects.get(pk=budget.pk).amount_usd == Decimal("15.5")
        entry = next(b for b in budgets_section(cast.workspace.pk) if b["id"] == budget.pk)
        assert entry["limit"] == 15_500_000_000
        assert AuditLog.objects.filter(action="budget.top_up").count() == 1


def test_only_lifetime_budgets_and_cross_tenant_is_404(cast, api):
    monthly = _prepaid(cast, period="month")
    r = api.call("admin", "post", f"/api/v1/budgets/{monthly.pk}/top-up/", {"amount_usd": "1"})
    assert r.status_code == 400
    budget = _prepaid(cast)
    r = api.call("outsider", "post", f"/api/v1/budgets/{budget.pk}/top-up/", {"amount_usd": "1"})
    assert r.status_code == 404
    assert api.call("outsider", "get", f"/api/v1/budgets/{budget.pk}/top-ups/").status_code == 404
    with workspace_scope(cast.workspace.pk):
        assert BudgetTopUp.objects.count() == 0
        assert Budget.objects.get(pk=budget.pk).amount_usd == Decimal("10")


def test_manual_reset_credits_the_period_spend_audited(cast, api, redis_client):
    from billing.models import BudgetRequest
    from tests.factories import UsageRecordFactory

    budget = _prepaid(cast, period="month")
    url = f"/api/v1/budgets/{budget.pk}/reset/"
    assert api.call("admin", "post", url, {"reason": "refund"}).status_code == 400  # nothing spent
    with workspace_scope(cast.workspace.pk):
        UsageRecordFactory(workspace=cast.workspace, member=cast.member, cost_usd=Decimal("4.25"))
    assert api.call("member", "post", url, {"reason": "x"}).status_code == 403
    r = api.call("finance", "post", url, {"reason": "duplicate charges from a retry storm"})
    assert r.status_code == 201, r.content
    assert r.json()["credit_usd"] == "4.250000"
    with workspace_scope(cast.workspace.pk):
        entry = next(b for b in budgets_section(cast.workspace.pk) if b["id"] == budget.pk)
        assert entry["limit"] == 14_250_000_000 and entry["base_limit"] == 10_000_000_000
        assert AuditLog.objects.filter(action="budget.reset").count() == 1
        assert BudgetRequest.objects.get().reason.startswith("manual reset")
    lifetime = _prepaid(cast)
    r = api.call("admin", "post", f"/api/v1/budgets/{lifetime.pk}/reset/", {"reason": "x"})
    assert r.status_code == 400
