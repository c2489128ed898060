"""Issue 15's remaining journeys in a real browser: workspace settings (an admin moves the time
zone, a member reads it), the audit log filtered by action, the invitation link copied from the
members page and opened in a fresh browser, the overview's error-rate/latency and cache charts,
a member drill-down's trend chart, a member's own caps, a budget's burn-down and the sessions
list's paging. Every figure a page shows is compared with a sum of ledger rows."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum
from django.utils import timezone

from attribution.services.rollups import rollup_workspace
from billing.models import UsageRecord
from billing.services.budgets import budget_create
from core.money import format_usd
from tests.attribution.factories import usage
from tests.browser.conftest import log_in
from tests.cast import PASSWORD, build_cast
from workspaces.models import AuditLog
from workspaces.services.settings import workspace_update
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _ledger(ws, **filters) -> dict:
    with workspace_scope(ws.pk):
        return UsageRecord.objects.filter(workspace=ws, **filters).aggregate(
            n=Count("id"),
            errors=Count("id", filter=Q(status_code__gte=400) | ~Q(error_type="")),
            hits=Count("id", filter=Q(cache_hit=True)),
            saved=Sum("saved_usd"),
            cost=Sum("cost_usd"),
        )


def _traffic(cast, *, previous: bool = False) -> None:
    """Ten paid calls of the member (one a 502), two cache hits, and optionally a call on
    the first day of last month (the trend chart's previous period)."""
    ws, m, now = cast.workspace, cast.member, timezone.now()
    with workspace_scope(ws.pk):
        for i in range(10):
            usage(
                ws,
                at=now - dt.timedelta(minutes=2 + i),
                cost="0.25",
                member=m,
                department=m.department,
                status_code=502 if i == 4 else 200,
                error_type="upstream_error" if i == 4 else "",
                latency_ms=200 + 10 * i,
            )
        for i in range(2):
            usage(
                ws,
                at=now - dt.timedelta(minutes=15 + i),
                cost="0",
                member=m,
                department=m.department,
                cache_hit=True,
                saved_usd="0.3",
                latency_ms=15,
            )
        if previous:
            first = (now.date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
            usage(
                ws,
                at=dt.datetime.combine(first, dt.time(0, 30), tzinfo=dt.UTC),
                cost="1.75",
                member=m,
                department=m.department,
            )
        rollup_workspace(workspace=ws)


def _member_cap(cast, amount: int = 10):
    with workspace_scope(cast.workspace.pk):
        return budget_create(
            workspace=cast.workspace,
            actor=None,
            name="member cap",
            scope_type="member",
            scope_id=cast.member.pk,
            metric="usd",
            amount_usd=amount,
            period="month",
        )


def _month_cost(cast) -> Decimal:
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return _ledger(cast.workspace, member=cast.member, created_at__gte=start)["cost"]


def test_admin_moves_the_time_zone_and_a_member_reads_it(live_app, browser):
    cast = build_cast(prefix="s1-")
    admin = browser.new_context().new_page()
    log_in(admin, live_app.url, cast.admin.user.email, PASSWORD)
    admin.goto(live_app.url + "/settings/")
    assert admin.locator("select[name=time_zone]").input_value() == "UTC"
    admin.select_option("select[name=time_zone]", "Europe/Paris")
    admin.click("button:has-text('Save settings')")
    admin.wait_for_selector("text=Workspace settings saved.")
    assert admin.locator("select[name=time_zone]").input_value() == "Europe/Paris"
    with workspace_scope(cast.workspace.pk):
        cast.workspace.refresh_from_db()
    assert cast.workspace.time_zone == "Europe/Paris"

    member = browser.new_context().new_page()
    log_in(member, live_app.url, cast.member.user.email, PASSWORD)
    member.goto(live_app.url + "/settings/")
    assert member.locator("[data-settings] form").count() == 0  # read-only for a member
    assert member.locator("[data-time-zone]").inner_text() == "Europe/Paris"
    assert "Owners and admins change these." in member.locator("[data-settings]").inner_text()


def test_admin_filters_the_audit_log_by_action(live_app, page):
    cast = build_cast(prefix="s2-")
    ws = cast.workspace
    with workspace_scope(ws.pk):
        budget_create(
            workspace=ws,
            actor=cast.admin,
            name="team cap",
            scope_type="department",
            scope_id=cast.member.department_id,
            metric="usd",
            amount_usd=50,
            period="month",
        )
        workspace_update(workspace=ws, actor=cast.owner, name="Acme", time_zone="Asia/Tokyo")
        want = AuditLog.objects.filter(workspace=ws, action="workspace.update").count()
        everything = AuditLog.objects.filter(workspace=ws).count()
    assert want >= 1 and everything > want

    log_in(page, live_app.url, cast.admin.user.email, PASSWORD)
    page.goto(live_app.url + "/settings/audit/")
    assert page.locator("table[data-table=audit] tbody tr[data-audit]").count() == min(
        everything, 50
    )
    page.select_option("select[name=action]", "workspace.update")
    page.click("form.filters button:has-text('Filter')")
    page.wait_for_url(re.compile(r"action=workspace.update"))
    rows = page.locator("table[data-table=audit] tbody tr[data-audit]")
    assert rows.count() == want
    assert {r.locator("td code").inner_text() for r in rows.all()} == {"workspace.update"}
    assert "Asia/Tokyo" in rows.first.inner_text()


def test_invitation_link_is_shown_once_copied_and_opened_elsewhere(live_app, browser):
    cast = build_cast(prefix="s3-")
    email = "copied@a.example"
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.url)
    admin = context.new_page()
    log_in(admin, live_app.url, cast.admin.user.email, PASSWORD)
    admin.goto(live_app.url + "/members/")
    admin.fill("input[name=email]", email)
    admin.select_option("select[name=role]", "member")
    admin.click("button:has-text('Send invitation')")
    box = admin.locator("[data-invite-link]")
    assert email in box.inner_text()
    link = admin.locator("#invite-link").input_value()
    assert link.startswith(live_app.url + "/invite/")
    assert link == live_app.invitation_link(email)  # the page shows the emailed link
    box.locator("button[data-copy]").click()
    admin.wait_for_selector("[data-invite-link] [data-copied=true]")
    assert admin.evaluate("navigator.clipboard.readText()") == link
    admin.goto(live_app.url + "/members/")  # shown once
    assert admin.locator("[data-invite-link]").count() == 0

    fresh = browser.new_context().new_page()  # no session: as the invitee's own browser
    fresh.goto(link)
    fresh.click(f"text=Sign up with {email}")
    field = fresh.locator("input[name=email]")
    assert field.input_value() == email and field.get_attribute("readonly") is not None


def test_overview_shows_error_rate_latency_and_cache_figures(live_app, page):
    cast = build_cast(prefix="s4-")
    _traffic(cast)
    want = _ledger(cast.workspace)
    assert (want["n"], want["errors"], want["hits"]) == (12, 1, 2)

    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    page.goto(live_app.url + "/")
    health = page.locator("[data-chart=health]")
    desc = health.locator("svg desc").text_content()
    assert desc == f"{want['n']} requests, {want['errors']} errors or blocks (8.3 %)"
    buckets = health.locator("g[data-requests]").all()
    assert sum(int(g.get_attribute("data-requests")) for g in buckets) == want["n"]
    assert sum(int(g.get_attribute("data-errors")) for g in buckets) == want["errors"]
    assert "mean latency" in health.locator("g[data-requests] title").first.text_content()
    assert health.locator("g[tabindex='0']").count() == len(buckets)  # keyboard-reachable

    cache = page.locator("[data-chart=cache]")
    saved = format_usd(want["saved"])
    assert cache.locator("svg desc").text_content() == (
        f"{want['hits']} cache hits of {want['n']} requests (16.7 %), {saved} saved"
    )
    points = cache.locator("g[data-saved]").all()
    assert sum(Decimal(g.get_attribute("data-saved")) for g in points) == want["saved"]
    card = page.locator(".card", has_text="Saved by cache")
    assert saved in card.inner_text() and f"{want['hits']} cache hits" in card.inner_text()


def test_member_drilldown_trend_against_the_previous_period(live_app, page):
    cast = build_cast(prefix="s5-")
    _traffic(cast, previous=True)
    now_cost = _month_cost(cast)
    assert now_cost == Decimal("2.5")

    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    page.goto(live_app.url + "/spend/members/")
    page.click(f'table a:has-text("{cast.member.user.email}")')
    page.wait_for_url(re.compile(rf"/spend/members/{cast.member.pk}/"))
    trend = page.locator("[data-chart=trend]")
    assert trend.is_visible()
    assert Decimal(trend.locator("[data-cumulative=current]").get_attribute("data-total")) == (
        now_cost
    )
    assert Decimal(trend.locator("[data-cumulative=previous]").get_attribute("data-total")) == (
        Decimal("1.75")
    )
    assert "$2.50" in trend.locator("svg desc").text_content()
    assert "$1.75" in trend.locator("svg desc").text_content()


def test_member_sees_their_own_cap(live_app, page):
    cast = build_cast(prefix="s6-")
    _traffic(cast)
    budget = _member_cap(cast)
    used = _month_cost(cast)

    log_in(page, live_app.url, cast.member.user.email, PASSWORD)
    page.goto(live_app.url + "/budgets/mine/")
    card = page.locator(f"[data-budget='{budget.pk}']")
    assert Decimal(card.locator("[data-used]").get_attribute("data-used")) == used
    text = card.inner_text()
    assert f"{format_usd(used)} of $10.00" in text
    assert f"{format_usd(Decimal(10) - used)} remaining" in text
    assert "burn-down" not in text  # a member is no spend reader: no link to the chart


def test_finance_opens_a_budgets_burn_down(live_app, page):
    cast = build_cast(prefix="s7-")
    _traffic(cast)
    budget = _member_cap(cast)
    used = _month_cost(cast)

    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    page.goto(live_app.url + "/budgets/")
    page.locator(f"[data-budget='{budget.pk}'] a:has-text('burn-down')").click()
    page.wait_for_url(re.compile(rf"/budgets/{budget.pk}/"))
    assert page.locator("h1").inner_text() == f"Burn-down · Member {cast.member.user.email}"
    assert Decimal(page.locator("[data-used]").get_attribute("data-used")) == used
    chart = page.locator("svg.burndown")
    assert chart.get_attribute("aria-label") == (
        f"Burn-down of Member {cast.member.user.email}: {format_usd(used)} of $10.00"
    )
    assert chart.locator("line.cap title").text_content() == "cap $10.00"


def test_sessions_list_pages_past_a_hundred(live_app, page):
    cast = build_cast(prefix="s8-")
    ws, now = cast.workspace, timezone.now()
    with workspace_scope(ws.pk):
        for i in range(103):
            usage(
                ws,
                at=now - dt.timedelta(seconds=30 + i),
                cost=f"0.{i + 1:03d}",
                member=cast.member,
                session_id=f"run-{i:03d}",
            )
        rollup_workspace(workspace=ws)
    total = _ledger(ws)["cost"]

    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    page.goto(live_app.url + "/spend/sessions/")
    summary = page.locator("[data-session-summary]")
    assert Decimal(summary.get_attribute("data-session-summary")) == total
    assert f"103 sessions, {format_usd(total)} in all" in summary.inner_text()
    first = [r.get_attribute("data-session") for r in page.locator("tr[data-session]").all()]
    assert len(first) == 100 and first[0] == "run-102"  # sorted by cost, dearest first
    page.click("text=next →")
    page.wait_for_url(re.compile(r"page=2"))
    second = [r.get_attribute("data-session") for r in page.locator("tr[data-session]").all()]
    assert second == ["run-002", "run-001", "run-000"]
    assert page.locator("text=next →").count() == 0
    page.click("text=← previous")
    page.wait_for_url(re.compile(r"page=1"))
    assert page.locator("tr[data-session]").count() == 100
