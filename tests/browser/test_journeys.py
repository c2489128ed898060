"""Three journeys in a real browser against a real server.

1. The finance owner logs in and reads spend per member, agent and department: the numbers
   on the pages equal the ledger.
2. An admin invites a member; the member signs up through the link and gets a gateway key;
   the admin sets a $ cap on that member.
3. The member's calls through the gateway hit the cap: the next call is a 402, and the
   dashboard shows the block and the alerts.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum
from django.utils import timezone

from attribution.services.rollups import rollup_workspace
from billing.models import UsageRecord
from tests.attribution.factories import usage
from tests.browser.conftest import log_in
from tests.cast import PASSWORD, build_cast
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _costs_on(page, table: str) -> dict[str, Decimal]:
    """{row label: exact spend} of a spend table on the current page."""
    out = {}
    for row in page.locator(f"table[data-table='{table}'] tbody tr[data-key]").all():
        label = row.locator("td").first.inner_text().strip()
        out[label] = Decimal(row.locator("td[data-cost]").get_attribute("data-cost"))
    return out


def test_finance_reads_spend_matching_the_ledger(live_app, page):
    cast = build_cast(prefix="j1-")
    now = timezone.now()
    ws = cast.workspace
    with workspace_scope(ws.pk):
        bot = agent_create(workspace=ws, slug="support-bot", name="Support bot", owner=cast.member)
        m, a = cast.member, cast.admin
        usage(
            ws,
            at=now - dt.timedelta(minutes=5),
            cost="1.100000000001",
            member=m,
            department=m.department,
            agent=bot,
            session_id="t-1",
        )
        usage(ws, at=now - dt.timedelta(minutes=4), cost="0.4", member=m, department=m.department)
        usage(ws, at=now - dt.timedelta(minutes=3), cost="2.5", member=a, model="gpt-4o")
        usage(ws, at=now - dt.timedelta(minutes=2), cost="0.000123", member=cast.owner)
        rollup_workspace(workspace=ws)
        ledger_total = UsageRecord.objects.aggregate(s=Sum("cost_usd"))["s"]
        per_member = {
            m.user.email: Decimal("1.500000000001"),
            a.user.email: Decimal("2.5"),
            cast.owner.user.email: Decimal("0.000123"),
        }
        assert sum(per_member.values()) == ledger_total

    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    page.goto(live_app.url + "/")
    total = page.locator("[data-total-spend]").first
    assert Decimal(total.get_attribute("data-total-spend")) == ledger_total
    assert total.inner_text() == "$4.00"
    assert _costs_on(page, "top-members") == per_member

    page.click("text=Top members >> xpath=.. >> a:has-text('all')")
    page.wait_for_url(re.compile(r"/spend/members/"))
    assert _costs_on(page, "members") == per_member

    page.goto(live_app.url + "/spend/agents/")
    agents = _costs_on(page, "agents")
    assert agents["support-bot"] == Decimal("1.100000000001")
    assert sum(agents.values()) == ledger_total  # the rest is "(no agent)"

    page.goto(live_app.url + "/spend/departments/")
    departments = _costs_on(page, "departments")
    assert departments["Engineering"] == Decimal("1.500000000001")

    # Drill into the member: the same number, and their requests listed.
    page.goto(live_app.url + "/spend/members/")
    page.click(f'table a:has-text("{m.user.email}")')  # the row link, not the chart text
    page.wait_for_url(re.compile(rf"/spend/members/{m.pk}/"))
    assert Decimal(
        page.locator("[data-total-spend]").first.get_attribute("data-total-spend")
    ) == Decimal("1.500000000001")
    assert page.locator("table[data-table='recent-requests'] tbody tr").count() == 2


def test_admin_invites_member_who_gets_a_key_and_a_cap(live_app, browser):
    from billing.models import Budget
    from gateway.models import GatewayKey
    from workspaces.models import Member

    cast = build_cast(prefix="j2-")
    ws = cast.workspace
    new_email = "newhire@a.example"

    admin = browser.new_context().new_page()
    log_in(admin, live_app.url, cast.admin.user.email, PASSWORD)
    admin.goto(live_app.url + "/members/")
    admin.fill("input[name=email]", new_email)
    admin.select_option("select[name=role]", "member")
    admin.select_option("select[name=department]", label="Engineering")
    admin.click("button:has-text('Send invitation')")
    admin.wait_for_selector(f"text=Invitation emailed to {new_email}")
    link = live_app.invitation_link(new_email)

    # The new member, in their own browser session, follows the emailed link and signs up.
    member = browser.new_context().new_page()
    member.goto(link)
    member.click(f"text=Sign up with {new_email}")
    # The invited address is prefilled and locked (a typo would make a second account).
    email = member.locator("input[name=email]")
    assert email.input_value() == new_email and email.get_attribute("readonly") is not None
    member.fill("input[name=password1]", "a-long-new-password-77")
    member.fill("input[name=password2]", "a-long-new-password-77")
    member.click("button[type=submit]")
    member.wait_for_url(re.compile(r"/spend/members/\d+/"))  # a member lands on their usage
    with workspace_scope(ws.pk):
        hire = Member.objects.select_related("department").get(user__email=new_email)
    assert (hire.role, hire.department.name) == ("member", "Engineering")

    # The member issues their own gateway key and sees it exactly once.
    member.goto(live_app.url + "/manage/gateway-keys/")
    member.fill("input[name=name]", "laptop")
    member.select_option("select[name=holder]", f"member:{hire.pk}")
    member.click("button:has-text('Create key')")
    raw_key = member.locator("#new-key").inner_text().strip()
    assert raw_key.startswith("alph_")
    member.goto(live_app.url + "/manage/gateway-keys/")
    assert raw_key not in member.content()
    assert member.locator("tr[data-key-prefix] >> text=laptop").count() == 1
    with workspace_scope(ws.pk):
        key = GatewayKey.objects.get(member=hire)
    assert raw_key.startswith(key.prefix)

    # The admin caps the new member at $2 a day with the default ladder.
    admin.goto(live_app.url + "/manage/budgets/")
    admin.fill("input[name=name]", "new hire cap")
    admin.select_option("select[name=scope]", f"member:{hire.pk}")
    admin.select_option("select[name=metric]", "usd")
    admin.fill("input[name=amount_usd]", "2")
    admin.select_option("select[name=period]", "day")
    admin.click("button:has-text('Save budget')")
    admin.wait_for_selector("text=Budget saved")
    assert admin.locator("[data-budget]").filter(has_text=new_email).count() == 1
    with workspace_scope(ws.pk):
        budget = Budget.objects.get(scope_type="member", scope_id=hire.pk)
    assert (budget.amount_usd, budget.period, budget.ladder, budget.hard_stop) == (
        Decimal(2),
        "day",
        [50, 75, 90, 100],
        True,
    )


def test_member_hits_the_cap_gets_402_and_the_dashboard_shows_it(live_app, page, settings):
    from alephant.celery import app as celery_app
    from billing.models import Alert
    from billing.services.budgets import budget_create
    from billing.tasks import alerts_drain_task
    from gateway.ledger_writer import LedgerWriter
    from gateway.services.keys import gateway_key_create, provider_key_create

    cast = build_cast(prefix="j3-")
    ws, m = cast.workspace, cast.member
    with workspace_scope(ws.pk):
        provider_key_create(
            workspace=ws,
            provider="openai",
            name="sim",
            secret="sk-sim-000001",
            base_url=live_app.simulator + "/v1",
        )
        _key, raw = gateway_key_create(workspace=ws, name="laptop", member=m)
        budget = budget_create(
            workspace=ws,
            actor=cast.admin,
            name="member cap",
            scope_type="member",
            scope_id=m.pk,
            metric="usd",
            amount_usd=Decimal("0.02"),
            period="day",
            throttle_at=None,
        )

    statuses, refusal = [], None
    with httpx.Client(base_url=live_app.url + "/v1", timeout=30) as client:
        for i in range(40):
            response = client.post(
                "/chat/completions",
                headers={"Authorization": f"Bearer {raw}"},
                json={
                    "model": "gpt-4o",
                    "max_tokens": 600,
                    "messages": [{"role": "user", "content": f"call {i} [[sim:tokens=500]]"}],
                },
            )
            statuses.append(response.status_code)
            if response.status_code != 200:
                refusal = response
                break
    assert refusal is not None and refusal.status_code == 402, (statuses, refusal.text)
    error = refusal.json()["error"]
    assert error["type"] == "budget_exceeded"
    assert statuses.count(200) >= 2, (statuses, refusal.text)
    # The next call is refused too, before it reaches the provider.
    sim_before = httpx.get(live_app.simulator + "/_sim/stats").json()["total"]
    with httpx.Client(base_url=live_app.url + "/v1", timeout=30) as client:
        again = client.post(
            "/chat/completions",
            headers={"Authorization": f"Bearer {raw}"},
            json={
                "model": "gpt-4o",
                "max_tokens": 600,
                "messages": [{"role": "user", "content": "once more"}],
            },
        )
    assert again.status_code == 402
    assert httpx.get(live_app.simulator + "/_sim/stats").json()["total"] == sim_before

    # What the worker and beat do in production: write the ledger, record alerts, roll up.
    LedgerWriter().drain()
    celery_app.conf.task_always_eager = True
    try:
        alerts_drain_task()
    finally:
        celery_app.conf.task_always_eager = False
    with workspace_scope(ws.pk):
        rollup_workspace(workspace=ws)
        spent = UsageRecord.objects.filter(member=m).aggregate(s=Sum("cost_usd"))["s"]
        refused = UsageRecord.objects.filter(member=m, status_code=402).count()
        alerts = list(Alert.objects.filter(budget=budget).values_list("step", flat=True))
    assert Decimal(0) < spent <= Decimal("0.02")  # a hard stop never overshoots
    assert refused >= 1
    assert len(alerts) == len(set(alerts)) and set(alerts) <= {50, 75, 90, 100}
    assert 50 in alerts and 100 in alerts  # the first step, and the block

    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    page.goto(live_app.url + "/budgets/")
    card = page.locator(f"[data-budget='{budget.pk}']")
    assert "blocked" in card.inner_text()
    page.goto(live_app.url + "/alerts/")
    feed = page.locator("table[data-table='alerts']").inner_text()
    assert "member cap" in feed or m.user.email in feed, feed
    page.goto(f"{live_app.url}/spend/members/{m.pk}/")
    assert (
        Decimal(page.locator("[data-total-spend]").first.get_attribute("data-total-spend")) == spent
    )
    assert "402 budget_exceeded" in page.locator("table[data-table='recent-requests']").inner_text()
