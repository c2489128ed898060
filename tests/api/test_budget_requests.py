"""Budget increase requests through the API: file, list, approve (less), deny, roles, tenancy,
the snapshot the gateway reads, audit log, signed links and the requester hearing the answer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from billing.models import BudgetRequest, RequestStatus, SignedLinkUse
from billing.services.budget_request_notify import link_token
from billing.services.budget_requests import budget_request_expire
from billing.services.budgets import budget_create
from billing.snapshots import budgets_section
from workspaces.models import AuditLog
from workspaces.tenancy import workspace_scope

URL = "/api/v1/budget-requests/"


def _budget(cast, scope_type="member", scope_id=None, amount="1.00"):
    with workspace_scope(cast.workspace.pk):
        return budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type=scope_type,
            scope_id=scope_id if scope_id is not None else cast.member.pk,
            amount_usd=Decimal(amount),
            period="month",
        )


def _until(hours=24):
    return (timezone.now() + timedelta(hours=hours)).isoformat()


def _file(api, budget, role="member", amount="5.00"):
    body = {"budget_id": budget.pk, "amount_usd": amount, "reason": "demo", "until": _until()}
    return api.call(role, "post", URL, body)


def test_member_files_admin_approves_less_snapshot_and_audit(
    cast, api, django_capture_on_commit_callbacks
):
    budget = _budget(cast)
    r = _file(api, budget)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "pending" and body["amount_usd"] == "5.000000"
    assert api.call("member", "get", URL).json()["count"] == 1
    assert api.call("finance", "get", URL + "?status=pending").json()["count"] == 1
    # the requester cannot decide; a member cannot decide at all
    assert api.call("member", "post", f"{URL}{body['id']}/approve/", {}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        ok = api.call("admin", "post", f"{URL}{body['id']}/approve/", {"amount_usd": "2.50"})
    assert ok.status_code == 200, ok.content
    assert ok.json()["status"] == "approved" and ok.json()["approved_usd"] == "2.500000"
    with workspace_scope(cast.workspace.pk):
        entry = next(b for b in budgets_section(cast.workspace.pk) if b["id"] == budget.pk)
        actions = set(AuditLog.objects.values_list("action", flat=True))
    assert entry["base_limit"] == 1_000_000_000
    assert entry["limit"] == 3_500_000_000
    assert entry["increases"][0][1] == 2_500_000_000
    assert entry["request_url"].endswith(f"/budget-requests/new/?budget={budget.pk}")
    assert {"budget_request.create", "budget_request.approve"} <= actions
    assert any("approved" in m.subject for m in mail.outbox)  # the requester hears
    again = api.call("finance", "post", f"{URL}{body['id']}/approve/", {})
    assert again.status_code == 400  # decided once


def test_approving_more_than_asked_is_refused(cast, api):
    rid = _file(api, _budget(cast)).json()["id"]
    r = api.call("finance", "post", f"{URL}{rid}/approve/", {"amount_usd": "9"})
    assert r.status_code == 400


def test_own_request_cannot_be_approved_even_by_an_admin(cast, api):
    budget = _budget(cast, "workspace", cast.workspace.pk)
    rid = _file(api, budget, role="admin").json()["id"]
    assert api.call("admin", "post", f"{URL}{rid}/approve/", {}).status_code == 403
    assert api.call("owner", "post", f"{URL}{rid}/approve/", {}).status_code == 200


def test_deny_with_reason_and_requester_hears(cast, api, django_capture_on_commit_callbacks):
    rid = _file(api, _budget(cast)).json()["id"]
    assert api.call("finance", "post", f"{URL}{rid}/deny/", {}).status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        r = api.call("finance", "post", f"{URL}{rid}/deny/", {"reason": "not this month"})
    assert r.status_code == 200 and r.json()["status"] == "denied"
    assert any("denied" in m.subject for m in mail.outbox)


def test_member_asks_only_for_their_own_chain(cast, api):
    department = _budget(cast, "workspace", cast.workspace.pk)
    assert _file(api, department).status_code == 403
    others = _budget(cast, "member", cast.finance.pk)
    assert _file(api, others).status_code == 403
    assert api.call("member", "get", URL).json()["count"] == 0


def test_cross_tenant_is_404_and_changes_nothing(cast, api):
    rid = _file(api, _budget(cast)).json()["id"]
    for verb, data in (("approve", {}), ("deny", {"reason": "x"})):
        assert api.call("outsider", "post", f"{URL}{rid}/{verb}/", data).status_code == 404
    assert api.call("outsider", "get", f"{URL}{rid}/").status_code == 404
    with workspace_scope(cast.workspace.pk):
        assert BudgetRequest.objects.get(pk=rid).status == RequestStatus.PENDING
    foreign = _budget(cast)
    r = api.call("outsider", "post", URL, {**_body(foreign)})
    assert r.status_code == 400  # a foreign budget id is not found
    with workspace_scope(cast.workspace.pk):
        assert BudgetRequest.objects.count() == 1


def _body(budget):
    return {"budget_id": budget.pk, "amount_usd": "1", "reason": "x", "until": _until()}


def test_pending_requests_expire_and_the_requester_hears(cast, api):
    rid = _file(api, _budget(cast)).json()["id"]
    with workspace_scope(cast.workspace.pk):
        n = budget_request_expire(
            workspace_id=cast.workspace.pk, now=timezone.now() + timedelta(days=2)
        )
        assert n == 1
        assert BudgetRequest.objects.get(pk=rid).status == RequestStatus.EXPIRED


@pytest.mark.django_db(transaction=True)
def test_signed_link_approves_once_and_a_forged_one_is_404(cast, api, client):
    rid = _file(api, _budget(cast)).json()["id"]
    with workspace_scope(cast.workspace.pk):
        request = BudgetRequest.objects.get(pk=rid)
        token = link_token(request=request, action="approve")
    page = client.get(f"/budget-requests/link/{token}/")
    assert page.status_code == 200 and b"Approve" in page.content
    with workspace_scope(cast.workspace.pk):
        assert (
            BudgetRequest.objects.get(pk=rid).status == RequestStatus.PENDING
        )  # GET decides nothing
    done = client.post(f"/budget-requests/link/{token}/", {"amount_usd": "1"})
    assert done.status_code == 200 and b"approved" in done.content
    again = client.post(f"/budget-requests/link/{token}/", {})
    assert b"already used" in again.content
    assert client.get(f"/budget-requests/link/{token}x/").status_code == 404
    with workspace_scope(cast.workspace.pk):
        assert BudgetRequest.objects.get(pk=rid).approved_usd == Decimal(1)
        assert SignedLinkUse.objects.count() == 1
        assert AuditLog.objects.filter(action="budget_request.approve").exists()


def _login(cast, role):
    from django.test import Client

    client = Client()
    client.force_login(cast.by_role(role).user)
    return client


def test_pages_member_asks_finance_approves_less_burn_shows_base_and_increase(cast, api):
    budget = _budget(cast)
    member = _login(cast, "member")
    mine = member.get("/budgets/mine/").content.decode()
    assert f"/budget-requests/new/?budget={budget.pk}" in mine  # from the drill-down
    form = member.get(f"/budget-requests/new/?budget={budget.pk}")
    assert form.status_code == 200
    filed = member.post(
        "/budget-requests/new/",
        {"budget": budget.pk, "amount_usd": "3", "reason": "launch", "until": _until(24 * 30)},
    )
    assert filed.status_code == 302
    assert member.post("/budget-requests/1/approve/", {}).status_code == 403
    finance = _login(cast, "finance")
    page = finance.get("/budget-requests/").content.decode()
    assert "launch" in page and "Approve" in page and "Deny" in page
    with workspace_scope(cast.workspace.pk):
        rid = BudgetRequest.objects.get(budget=budget).pk
    finance.post(f"/budget-requests/{rid}/approve/", {"amount_usd": "2"})
    with workspace_scope(cast.workspace.pk):
        assert BudgetRequest.objects.get(pk=rid).approved_usd == Decimal(2)
    burn = member.get("/budgets/mine/").content.decode()
    assert "base $1.00" in burn and "+ $2.00 approved increase" in burn
    status = api.call("member", "get", f"/api/v1/budgets/{budget.pk}/").json()["status"]
    assert status["base_limit"] == "1.00" and status["increase"] == "2.00"
    assert status["remaining"] == "3.00"


def test_requests_page_for_a_member_lists_only_their_own(cast, api):
    _file(api, _budget(cast))
    _file(api, _budget(cast, "workspace", cast.workspace.pk), role="finance")
    page = _login(cast, "member").get("/budget-requests/").content.decode()
    assert page.count("data-request=") == 1 and "Approve</button>" not in page
