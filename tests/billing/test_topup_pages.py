"""Prepaid top-ups and the on-demand reset on a budget's page: through HTTP as finance, admin and
member (refused), with form errors, audit entries, the balance history and cross-tenant 404."""

from __future__ import annotations

from decimal import Decimal

from billing.models import Budget, BudgetRequest, BudgetTopUp
from billing.services.budgets import budget_create
from tests.factories import UsageRecordFactory
from workspaces.models import AuditLog
from workspaces.tenancy import workspace_scope


def _budget(workspace, *, period="lifetime", scope_type="workspace"):
    with workspace_scope(workspace.pk):
        return budget_create(
            workspace=workspace,
            actor=None,
            scope_type=scope_type,
            scope_id=workspace.pk,
            amount_usd=Decimal("10"),
            period=period,
        )


def _audit(workspace, action):
    with workspace_scope(workspace.pk):
        return AuditLog.objects.filter(workspace=workspace, action=action).count()


def test_finance_tops_up_and_sees_the_balance_history(client, cast):
    budget = _budget(cast.workspace)
    client.force_login(cast.finance.user)
    page = client.get(f"/manage/budgets/{budget.pk}/").content.decode()
    assert "data-top-up-form" in page and "data-confirm=" in page and "No top-ups yet." in page
    assert "data-reset-form" not in page  # a lifetime budget is topped up, not reset
    r = client.post(
        f"/manage/budgets/{budget.pk}/top-up/", {"amount_usd": "5.50", "note": "PO 1234"}
    )
    assert r.status_code == 302 and r["Location"] == f"/manage/budgets/{budget.pk}/"
    page = client.get(r["Location"]).content.decode()
    assert "Topped up $5.50: the budget is now $15.50." in page
    assert "PO 1234" in page and cast.finance.user.email in page
    with workspace_scope(cast.workspace.pk):
        assert Budget.objects.get(pk=budget.pk).amount_usd == Decimal("15.5")
        assert BudgetTopUp.objects.get().balance_after_usd == Decimal("15.5")
    assert _audit(cast.workspace, "budget.top_up") == 1


def test_bad_top_ups_show_form_errors_and_change_nothing(client, cast):
    budget = _budget(cast.workspace)
    monthly = _budget(cast.workspace, period="month")
    client.force_login(cast.admin.user)
    for amount in ("", "-3", "0", "abc"):
        r = client.post(f"/manage/budgets/{budget.pk}/top-up/", {"amount_usd": amount})
        assert r.status_code == 400, amount
        assert "errorlist" in r.content.decode()
    r = client.post(f"/manage/budgets/{monthly.pk}/top-up/", {"amount_usd": "1"})
    assert r.status_code == 400 and "only a lifetime spend budget" in r.content.decode()
    with workspace_scope(cast.workspace.pk):
        assert BudgetTopUp.objects.count() == 0
        assert Budget.objects.get(pk=budget.pk).amount_usd == Decimal("10")
    assert _audit(cast.workspace, "budget.top_up") == 0


def test_admin_resets_a_periodic_budget_with_a_reason(client, cast, redis_client):
    budget = _budget(cast.workspace, period="month")
    client.force_login(cast.admin.user)
    page = client.get(f"/manage/budgets/{budget.pk}/").content.decode()
    assert "data-reset-form" in page and "data-top-up-form" not in page
    url = f"/manage/budgets/{budget.pk}/reset/"
    r = client.post(url, {"reason": "refund"})
    assert r.status_code == 400 and "nothing spent this period" in r.content.decode()
    r = client.post(url, {"reason": ""})
    assert r.status_code == 400 and "This field is required" in r.content.decode()
    with workspace_scope(cast.workspace.pk):
        UsageRecordFactory(workspace=cast.workspace, member=cast.member, cost_usd=Decimal("4.25"))
    r = client.post(url, {"reason": "duplicate charges"}, follow=True)
    assert r.status_code == 200
    assert "Reset: a credit of $4.25 until the period ends." in r.content.decode()
    with workspace_scope(cast.workspace.pk):
        reset = BudgetRequest.objects.get(budget=budget)
        assert reset.approved_usd == Decimal("4.25") and "duplicate charges" in reset.reason
    assert _audit(cast.workspace, "budget.reset") == 1


def test_member_is_refused(client, cast, redis_client):
    lifetime = _budget(cast.workspace)
    monthly = _budget(cast.workspace, period="month")
    client.force_login(cast.member.user)
    r = client.post(f"/manage/budgets/{lifetime.pk}/top-up/", {"amount_usd": "1"})
    assert r.status_code == 403
    assert client.post(f"/manage/budgets/{monthly.pk}/reset/", {"reason": "x"}).status_code == 403
    with workspace_scope(cast.workspace.pk):
        assert BudgetTopUp.objects.count() == 0 and BudgetRequest.objects.count() == 0


def test_cross_tenant_is_404_and_unchanged(client, cast, redis_client):
    lifetime = _budget(cast.other_workspace)
    monthly = _budget(cast.other_workspace, period="month")
    client.force_login(cast.owner.user)
    r = client.post(f"/manage/budgets/{lifetime.pk}/top-up/", {"amount_usd": "1"})
    assert r.status_code == 404
    assert client.post(f"/manage/budgets/{monthly.pk}/reset/", {"reason": "x"}).status_code == 404
    with workspace_scope(cast.other_workspace.pk):
        assert BudgetTopUp.objects.count() == 0 and BudgetRequest.objects.count() == 0
        assert Budget.objects.get(pk=lifetime.pk).amount_usd == Decimal("10")
