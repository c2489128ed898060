"""The finance owner's console in a real browser: grouped alerts acknowledged by a click, the
period close of last month, and the request log at phone width (its table scrolls inside
its own box instead of widening the page)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from attribution.services.rollups import rollup_workspace
from billing.models import Alert
from billing.services.budgets import budget_create
from tests.attribution.factories import usage
from tests.browser.conftest import log_in
from tests.cast import PASSWORD, build_cast
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_acknowledges_loops_and_reads_last_months_close(live_app, page):
    cast = build_cast(prefix="c1-")
    ws, now = cast.workspace, timezone.now()
    last_month = (now.date().replace(day=1) - dt.timedelta(days=1)).replace(day=10)
    with workspace_scope(ws.pk):
        bot = agent_create(workspace=ws, slug="looper", name="Looper", owner=cast.member)
        for i in range(20):
            Alert.objects.create(
                workspace=ws,
                kind="loop",
                dedupe_key=f"loop:{i}",
                title=f"Agent loop detected on agent {bot.pk}",
                data={"subject": f"a{bot.pk}", "count": 5},
            )
        usage(
            ws,
            at=dt.datetime.combine(last_month, dt.time(9), tzinfo=dt.UTC),
            cost="12.5",
            member=cast.member,
        )
        rollup_workspace(workspace=ws)
        budget_create(
            workspace=ws,
            actor=None,
            scope_type="member",
            scope_id=cast.member.pk,
            metric="usd",
            amount_usd=10,
            period="month",
            hard_stop=False,
        )

    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    page.goto(live_app.url + "/alerts/")
    group = page.locator("[data-alert-group]")
    assert group.count() == 1
    assert "Agent loop on agent looper" in group.inner_text() and "×20 since" in group.inner_text()
    group.locator("button:has-text('Acknowledge')").click()
    page.wait_for_load_state()
    assert page.locator("[data-alert-group]").count() == 0
    page.select_option("select[name=state]", "acknowledged")
    page.click("button:has-text('Filter')")
    assert page.locator("[data-alert-group]").count() == 1

    page.goto(live_app.url + f"/budgets/?period=month&date={last_month.isoformat()}")
    assert "period close" in page.locator("h1").inner_text()
    burn = page.locator("[data-budget]").first
    assert "$12.50 of $10.00" in burn.inner_text() and "over" in burn.inner_text()

    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(live_app.url + "/requests/")
    box = page.locator("table[data-table=requests]").locator("xpath=..")
    assert box.evaluate("e => e.getBoundingClientRect().right") <= 390
    assert page.locator("table[data-table=requests] tbody tr").count() >= 1
