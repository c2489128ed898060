"""Tag (custom property) and customer scopes on the HTML budget form: created, shown back on the
edit page, edited, and bad input answered with form errors (nothing stored)."""

from __future__ import annotations

from decimal import Decimal

from billing.models import Budget
from workspaces.tenancy import workspace_scope

BASE = {"metric": "usd", "amount_usd": "25", "period": "month", "ladder": "50, 100"}


def _budgets(workspace):
    with workspace_scope(workspace.pk):
        return list(Budget.objects.filter(workspace=workspace).order_by("pk"))


def test_tag_budget_created_shown_and_edited(client, cast):
    client.force_login(cast.finance.user)
    r = client.post(
        "/manage/budgets/",
        {**BASE, "scope": "property:", "property_name": "Project", "property_value": "apollo"},
    )
    assert r.status_code == 302, r.content.decode()[:3000]
    (budget,) = _budgets(cast.workspace)
    assert (budget.scope_type, budget.scope_key, budget.scope_id) == (
        "property",
        "project=apollo",
        cast.workspace.pk,
    )
    page = client.get(f"/manage/budgets/{budget.pk}/").content.decode()
    assert 'value="project"' in page and 'value="apollo"' in page
    assert '<option value="property:" selected>' in page
    r = client.post(
        f"/manage/budgets/{budget.pk}/",
        {**BASE, "scope": "property:", "property_name": "project", "property_value": "gemini"},
    )
    assert r.status_code == 302
    (budget,) = _budgets(cast.workspace)
    assert budget.scope_key == "project=gemini" and budget.amount_usd == Decimal(25)


def test_customer_budget_created_and_switched_to_a_member(client, cast):
    client.force_login(cast.admin.user)
    r = client.post("/manage/budgets/", {**BASE, "scope": "customer:", "customer_id": "acme"})
    assert r.status_code == 302
    (budget,) = _budgets(cast.workspace)
    assert (budget.scope_type, budget.scope_key) == ("customer", "acme")
    page = client.get(f"/manage/budgets/{budget.pk}/").content.decode()
    assert 'value="acme"' in page
    r = client.post(
        f"/manage/budgets/{budget.pk}/",
        {**BASE, "scope": f"member:{cast.member.pk}", "customer_id": "ignored"},
    )
    assert r.status_code == 302
    (budget,) = _budgets(cast.workspace)
    assert (budget.scope_type, budget.scope_id, budget.scope_key) == (
        "member",
        cast.member.pk,
        "",
    )


def test_keyed_scopes_without_their_key_are_form_errors(client, cast):
    client.force_login(cast.finance.user)
    for data, field_error in (
        ({"scope": "property:", "property_name": "project"}, "Required for a tag budget."),
        ({"scope": "property:", "property_value": "apollo"}, "Required for a tag budget."),
        (
            {"scope": "property:", "property_name": "a=b", "property_value": "x"},
            "A property name has no",
        ),
        ({"scope": "customer:"}, "Required for a customer budget."),
    ):
        r = client.post("/manage/budgets/", {**BASE, **data})
        assert r.status_code == 400, data
        assert field_error in r.content.decode(), data
    assert _budgets(cast.workspace) == []
