"""The finance owner's console (issue 15): forecasts, budgets on every chain, period close,
grouped alerts with acknowledge, the request log, complete exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from attribution.forecasts import Baseline, budget_forecast
from attribution.services.rollups import rollup_workspace
from billing.models import Alert, UsageRecord
from billing.services.budgets import budget_create
from tests.attribution.factories import usage
from workspaces.tenancy import workspace_scope

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _fc(now, used="10", limit="400", baseline=None, hard_stop=False, blocked=False):
    return budget_forecast(
        used=Decimal(used),
        limit=Decimal(limit),
        start=START,
        end=END,
        now=now,
        baseline=baseline,
        hard_stop=hard_stop,
        blocked=blocked,
    )


def test_no_forecast_from_under_a_tenth_of_the_period():
    assert _fc(START + dt.timedelta(minutes=31)) is None
    assert _fc(START + dt.timedelta(days=2)) is None
    assert _fc(END) is None  # a closed period has its final figure, not a forecast


def test_run_rate_alone_without_history_and_blended_with_it():
    alone = _fc(START + dt.timedelta(days=3), used="30")
    assert alone.value == Decimal("300.000000") and alone.low == alone.high == alone.value
    # History spent $60 in 30 days ($2/day); at day 3 (10 %) history weighs 90 %.
    blended = _fc(
        START + dt.timedelta(days=3), used="30", baseline=Baseline(Decimal(60), 30 * 86400)
    )
    assert blended.low == Decimal("84.000000") and blended.high == Decimal("300.000000")
    assert blended.low < blended.value < blended.high  # 30 + 27 * (0.1*10 + 0.9*2) = 105.6
    assert blended.value == Decimal("105.600000")


def test_hard_stop_caps_the_forecast_and_a_blocked_scope_holds():
    capped = _fc(START + dt.timedelta(days=10), used="300", hard_stop=True)
    assert capped.value == Decimal(400) and capped.uncapped == Decimal(900)
    held = _fc(START + dt.timedelta(days=10), used="144", hard_stop=True, blocked=True)
    assert held.value == held.high == Decimal(144)


def _login(client, member):
    client.force_login(member.user)
    return client


def _ledger_sum(ws, **filters) -> Decimal:
    with workspace_scope(ws.pk):
        return UsageRecord.objects.filter(workspace=ws, **filters).aggregate(s=Sum("cost_usd"))["s"]


def _budget(ws, **kw):
    with workspace_scope(ws.pk):
        return budget_create(workspace=ws, actor=None, metric="usd", period="month", **kw)


def test_period_close_shows_last_months_final_spend_vs_cap(client, world):
    c = world.cast
    now = timezone.now()
    last_month = (now.date().replace(day=1) - dt.timedelta(days=1)).replace(day=15)
    at = dt.datetime.combine(last_month, dt.time(12), tzinfo=dt.UTC)
    with workspace_scope(c.workspace.pk):
        usage(c.workspace, at=at, cost="7.5", member=c.member, department=c.member.department)
        rollup_workspace(workspace=c.workspace)
    budget = _budget(c.workspace, scope_type="member", scope_id=c.member.pk, amount_usd=Decimal(10))
    _login(client, c.finance)
    page = client.get(f"/budgets/?period=month&date={last_month.isoformat()}")
    body = page.content.decode()
    assert page.status_code == 200 and "period close" in body
    assert 'data-used="7.5' in body and "$7.50 of $10.00" in body and "(closed)" in body
    live = client.get("/budgets/").content.decode()
    assert "$7.50 of" not in live  # this month's window holds only this month's $1.75
    assert client.get(f"/budgets/{budget.pk}/").status_code == 200
    _login(client, c.outsider)
    assert client.get(f"/budgets/{budget.pk}/").status_code == 404
    _login(client, c.member)
    assert client.get(f"/budgets/{budget.pk}/").status_code == 403


def test_drilldowns_show_the_budgets_on_their_chain(client, world):
    c = world.cast
    mine = _budget(c.workspace, scope_type="member", scope_id=c.member.pk, amount_usd=Decimal(5))
    agents = _budget(
        c.workspace, scope_type="agent", scope_id=world.agent.pk, amount_usd=Decimal(3)
    )
    other = _budget(c.workspace, scope_type="member", scope_id=c.admin.pk, amount_usd=Decimal(9))
    _login(client, c.member)
    for url in (f"/spend/members/{c.member.pk}/", "/budgets/mine/"):
        body = client.get(url).content.decode()
        assert f'data-budget="{mine.pk}"' in body and f'data-budget="{agents.pk}"' in body, url
        assert f'data-budget="{other.pk}"' not in body, url
        assert "remaining" in body
    _login(client, c.finance)
    body = client.get(f"/spend/agents/{world.agent.pk}/").content.decode()
    assert f'data-budget="{agents.pk}"' in body and f'data-budget="{mine.pk}"' in body
    assert f'data-budget="{other.pk}"' not in body


def _alerts(ws, agent, n=20):
    with workspace_scope(ws.pk):
        for i in range(n):
            Alert.objects.create(
                workspace=ws,
                kind="loop",
                dedupe_key=f"loop:{i}",
                title=f"Agent loop detected on agent {agent.pk}",
                data={"subject": f"a{agent.pk}", "count": 5},
            )
        return Alert.objects.filter(workspace=ws).order_by("-id").first()


def test_alerts_grouped_named_filtered_and_acknowledged(client, world):
    c = world.cast
    latest = _alerts(c.workspace, world.agent)
    _login(client, c.finance)
    body = client.get("/alerts/").content.decode()
    assert "Agent loop on agent summarizer" in body and 'data-count="20"' in body
    assert body.count("data-alert-group=") == 1
    assert "×20 since" in body
    assert client.get("/alerts/?kind=ladder").content.decode().count("data-alert-group=") == 0
    assert client.get("/alerts/?scope=agent").content.decode().count("data-alert-group=") == 1
    # Another workspace cannot acknowledge it; a member may not either.
    _login(client, c.outsider)
    assert client.post(f"/alerts/{latest.pk}/acknowledge/").status_code == 404
    _login(client, c.member)
    assert client.post(f"/alerts/{latest.pk}/acknowledge/").status_code == 403
    with workspace_scope(c.workspace.pk):
        assert Alert.objects.filter(acknowledged_at__isnull=False).count() == 0
    _login(client, c.finance)
    assert client.post(f"/alerts/{latest.pk}/acknowledge/").status_code == 302
    with workspace_scope(c.workspace.pk):
        assert Alert.objects.filter(acknowledged_by=c.finance).count() == 20
    assert "data-alert-group" not in client.get("/alerts/").content.decode()
    assert 'data-count="20"' in client.get("/alerts/?state=acknowledged").content.decode()


def _many(c, n):
    now = timezone.now()
    with workspace_scope(c.workspace.pk):
        for i in range(n):
            usage(
                c.workspace,
                at=now - dt.timedelta(seconds=10 + i),
                cost="0.013",
                member=c.admin,
                session_id=f"bulk-{i}",
            )
        rollup_workspace(workspace=c.workspace)


def _csv(response) -> list[dict]:
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(raw.decode())))


@pytest.mark.parametrize("role", ["finance", "admin"])
def test_exports_hold_every_row_and_name_workspace_and_period(client, world, role):
    c = world.cast
    _many(c, 130)
    _login(client, c.by_role(role))
    response = client.get("/spend/sessions/?export=sessions")
    name = response["Content-Disposition"]
    assert c.workspace.slug in name and timezone.localdate().strftime("%Y-%m-01") in name
    rows = _csv(response)
    assert len(rows) == 131  # 130 bulk runs + run-a (beyond the page's 100)
    assert sum(Decimal(r["cost_usd"]) for r in rows) == _ledger_sum(c.workspace, session_id__gt="")
    log = client.get("/requests/?export=requests")
    rows = _csv(log)
    assert len(rows) == 133 and "requests" in log["Content-Disposition"]
    assert sum(Decimal(r["cost_usd"]) for r in rows) == _ledger_sum(c.workspace)
    assert "99" not in {r["cost_usd"] for r in rows}  # nothing of workspace B
    member = client.get(f"/spend/members/{c.admin.pk}/?export=recent-requests")
    assert len(_csv(member)) == 131  # every row of the admin, not one 50-row page


def test_request_log_filters_search_and_cursor(client, world):
    c = world.cast
    _many(c, 60)
    _login(client, c.finance)
    first = client.get("/requests/")
    assert first.status_code == 200 and first.content.decode().count("data-request=") == 50
    next_url = first.context["next_url"]
    second = client.get("/requests/" + next_url)
    assert second.content.decode().count("data-request=") == 13
    assert not second.context["next_url"]
    with workspace_scope(c.workspace.pk):
        one = UsageRecord.objects.filter(workspace=c.workspace, member=c.member).first()
    hit = client.get(f"/requests/?q={one.request_id}").content.decode()
    assert hit.count("data-request=") == 1
    assert (
        client.get(f"/requests/?member={c.member.pk}").content.decode().count("data-request=") == 2
    )
    assert client.get("/requests/?model=openai/gpt-4o").content.decode().count("data-request=") == 1
    assert client.get("/requests/?member=abc").status_code == 200  # names nothing: empty
    _login(client, c.member)
    assert client.get("/requests/").status_code == 403
    _login(client, c.outsider)
    outsider_view = client.get(f"/requests/?member={c.member.pk}").content.decode()
    assert "data-request=" not in outsider_view


def test_odd_query_strings_answer_without_a_500(client, world):
    _login(client, world.cast.finance)
    odd = [
        "after=nope",
        "after=2026-01-01T00:00:00_x",
        "after=2026-01-01T00:00:00+00:00_99999999999999999999",
        "status=xx",
        "status=9999",
        "property=bad",
        "property=a b=c",
        "member=-1",
        "key=99999999999999999999",
        "model=%00",
        "q=" + "x" * 500,
        "kind=zz&scope=zz&state=zz",
        "period=month&date=1970-01-01",
        "sort=zz&page=-4",
    ]
    for url in ("/requests/", "/alerts/", "/budgets/", "/spend/sessions/", "/budgets/mine/"):
        for qs in odd:
            assert client.get(f"{url}?{qs}").status_code < 500, (url, qs)
