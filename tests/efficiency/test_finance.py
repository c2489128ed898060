"""The finance owner's scenario (issue 19): three agents of one member (one repeating itself, one
on a frontier model for tiny calls, one tidy), ledger rows from factories, every dollar checked
against an independent computation (`genai_prices` directly, not the efficiency code)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from genai_prices import Usage, calc_price

from core.money import format_usd
from efficiency import selectors
from efficiency.models import (
    EfficiencyGrade,
    EfficiencyReport,
    EfficiencySettings,
    EfficiencySignal,
)
from efficiency.services import (
    efficiency_compute,
    efficiency_digest_send,
    efficiency_settings_set,
)
from tests.efficiency.conftest import T0, fp
from tests.factories import UsageRecordFactory
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope


def price(model: str, inp: int, out: int) -> Decimal:
    usage = Usage(input_tokens=inp, output_tokens=out)
    return Decimal(str(calc_price(usage, model_ref=model, provider_id="openai").total_price))


def call(ws, member, agent, at, *, model="gpt-4o-mini", inp=800, out=400, prompt=None, hit=False):
    cost = price(model, inp, out)
    extra = {"fingerprint": fp(prompt)} if prompt else {}
    return UsageRecordFactory(
        workspace=ws,
        member=member,
        agent=agent,
        created_at=at,
        model=model,
        department_id=(agent or member).department_id,
        input_tokens=inp,
        output_tokens=out,
        cost_usd=Decimal(0) if hit else cost,
        saved_usd=cost if hit else Decimal(0),
        cache_hit=hit,
        **extra,
    )


@pytest.fixture
def trio(scoped):
    ws, m = scoped.workspace, scoped.member
    agents = {
        slug: agent_create(workspace=ws, slug=slug, name=slug.title(), owner=m)
        for slug in ("looper", "overkiller", "tidy")
    }
    loop = [
        call(ws, m, agents["looper"], T0 + timedelta(seconds=4 * i), prompt="fix the test")
        for i in range(12)
    ]
    overkill = [
        call(
            ws,
            m,
            agents["overkiller"],
            T0 + timedelta(minutes=2 * i),
            model="gpt-4o",
            inp=300,
            out=200,
        )
        for i in range(30)
    ]
    for i in range(20):
        call(ws, m, agents["tidy"], T0 + timedelta(minutes=3 * i), inp=900 + i)
    own = [call(ws, m, None, T0 + timedelta(minutes=5 * i), inp=1000 + i) for i in range(10)]
    return scoped, agents, loop, overkill, own


def _grade(kind, pk):
    return EfficiencyGrade.objects.get(entity_kind=kind, **{f"{kind}_id": pk})


def _pct(part, whole):
    return str((part / whole * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _login(member):
    client = Client()
    client.force_login(member.user)
    return client


def test_pennies_are_not_graded_under_the_default_floors(default_floors, trio):
    cast, agents, loop, _overkill, _own = trio
    report = efficiency_compute(workspace=cast.workspace, at=T0)
    # The default: $1 to be graded, $0.10 for a signal (0.5 % / 0.1 % of spend are smaller here).
    assert Decimal(report.thresholds["grade_floor_usd"]) == Decimal("1")
    assert Decimal(report.thresholds["signal_floor_usd"]) == Decimal("0.10")
    assert report.thresholds["immaterial_findings"] == "3"  # loop, overkill, cache miss
    grades = list(EfficiencyGrade.objects.filter(report=report))
    assert grades and all(g.grade == "" and g.score is None and g.verdict == "" for g in grades)
    assert not EfficiencySignal.objects.filter(report=report).exists()
    looper = _grade("agent", agents["looper"].pk)
    spend = sum((r.cost_usd for r in loop), Decimal(0))
    assert looper.spend_usd == spend
    assert looper.reason == (
        f"Not enough spend to grade: {format_usd(spend)} over 12 calls, below the $1.00 floor."
    )
    html = _login(cast.finance).get("/efficiency/").content.decode()
    assert "not enough spend to grade" in html and 'class="eff-grade eff-grade-D"' not in html


def test_dollars_rank_and_waste_lands_where_it_happens(trio):
    cast, agents, loop, overkill, _own = trio
    efficiency_settings_set(
        workspace=cast.workspace, grade_min_usd=Decimal("0.001"), signal_min_usd=Decimal("0.001")
    )
    report = efficiency_compute(workspace=cast.workspace, at=T0)
    loop_waste = sum((r.cost_usd for r in loop[1:]), Decimal(0))
    overkill_waste = sum(
        (r.cost_usd - price("gpt-4o-mini", 300, 200) for r in overkill), Decimal(0)
    )
    assert overkill_waste > 10 * loop_waste
    assert report.thresholds["grade_floor_usd"] == "0.001000000000"

    ranked = list(EfficiencyGrade.objects.filter(report=report, entity_kind="agent"))
    assert [(g.label, g.rank) for g in ranked] == [("Overkiller", 1), ("Looper", 2), ("Tidy", 3)]
    heavy, looper, tidy = ranked
    assert (heavy.grade, heavy.score, heavy.waste_usd) == ("D", 0, overkill_waste)
    assert (looper.grade, looper.capped_by, looper.waste_usd) == ("D", "thrashing", loop_waste)
    assert (tidy.grade, tidy.verdict, tidy.waste_usd) == ("S", "justified", 0)
    # Verdict text: dollars at stake first, then the ratio.
    ratio = _pct(overkill_waste, heavy.spend_usd)
    assert heavy.reason.startswith(
        f"{format_usd(overkill_waste)} avoidable ({ratio}% of {format_usd(heavy.spend_usd)}"
    )

    # The member never looped: graded on their own calls, the agents' waste "via agents".
    member = _grade("member", cast.member.pk)
    total = overkill_waste + loop_waste
    assert (member.grade, member.verdict, member.capped_by) == ("S", "justified", "")
    assert member.waste_usd == total
    assert Decimal(member.breakdown["own"]["waste_usd"]) == 0
    via = [
        (c["label"], Decimal(c["waste_usd"]), c["share_percent"])
        for c in member.breakdown["via_agents"]
    ]
    assert via == [
        ("Overkiller", overkill_waste, _pct(overkill_waste, total)),
        ("Looper", loop_waste, _pct(loop_waste, total)),
        ("Tidy", Decimal(0), "0.0"),
    ]
    largest = f"largest contributor agent Overkiller ({_pct(overkill_waste, total)}%"
    assert member.reason.startswith(f"{format_usd(total)} avoidable; {largest}")
    department = _grade("department", agents["looper"].department_id)
    assert department.capped_by == "" and largest in department.reason
    assert department.waste_usd == total

    detail = _login(cast.finance).get(f"/efficiency/member/{cast.member.pk}/").content.decode()
    assert "via agent" in detail and f"{_pct(overkill_waste, total)}%" in detail
    assert report.input_digest in detail and "grade_floor_usd" in detail


def test_api_and_digest_mail_sort_by_avoidable_dollars(trio, mailoutbox):
    cast, *_ = trio
    efficiency_settings_set(
        workspace=cast.workspace, grade_min_usd=Decimal("0.001"), signal_min_usd=Decimal("0.001")
    )
    report = efficiency_compute(workspace=cast.workspace, at=T0)
    _, token = api_token_create(member=cast.finance, name="fin")
    body = (
        Client()
        .get(
            "/api/v1/efficiency?entity_kind=agent&period=week", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        .json()
    )
    rows = body["results"]
    assert [r["label"] for r in rows] == ["Overkiller", "Looper", "Tidy"]
    assert [Decimal(r["waste_usd"]) for r in rows] == sorted(
        (Decimal(r["waste_usd"]) for r in rows), reverse=True
    )
    assert {r["input_digest"] for r in rows} == {report.input_digest}
    assert rows[0]["thresholds"]["grade_floor_usd"] == "0.001000000000"

    assert efficiency_digest_send(workspace=cast.workspace, at=T0 + timedelta(days=7)) == 1
    text = mailoutbox[0].body
    assert text.index("Overkiller") < text.index("Looper")
    assert "Tidy" not in text.split("All grades")[0].split("Most avoidable dollars:")[1]


def test_recompute_api_and_command_are_deterministic_and_scoped(trio):
    cast, *_ = trio
    tokens = {}
    for role in ("owner", "finance", "member", "outsider"):
        member = cast.by_role(role)
        with workspace_scope(member.workspace_id):
            _, tokens[role] = api_token_create(member=member, name=role)

    def post(role, **data):
        return Client().post(
            "/api/v1/efficiency/recompute/",
            data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tokens[role]}",
        )

    assert post("member").status_code == 403
    first = post("finance", period="week")
    assert first.status_code == 200, first.content
    report = EfficiencyReport.objects.get(pk=first.json()["id"])
    grades = list(
        EfficiencyGrade.objects.filter(report=report).values_list(
            "entity_kind", "label", "rank", "grade", "score", "waste_usd", "reason"
        )
    )
    again = post("owner", report_id=report.pk).json()
    assert again["input_digest"] == first.json()["input_digest"] == report.input_digest
    assert again["thresholds"] == first.json()["thresholds"]
    assert grades == list(
        EfficiencyGrade.objects.filter(report=report).values_list(
            "entity_kind", "label", "rank", "grade", "score", "waste_usd", "reason"
        )
    )

    # Another workspace's token: A's report is a 404, and A's report is untouched.
    report.refresh_from_db()
    before = (report.computed_at, report.input_digest)
    assert post("outsider", report_id=report.pk).status_code == 404
    report.refresh_from_db()
    assert (report.computed_at, report.input_digest) == before

    out = io.StringIO()
    call_command(
        "efficiency_recompute", workspace=cast.workspace.pk, period="week", json=True, stdout=out
    )
    [line] = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["input_digest"] == report.input_digest and line["report_id"] == report.pk


def test_floor_settings_api_roles_and_cross_tenant(trio):
    cast, *_ = trio
    tokens = {}
    for role in ("admin", "finance", "outsider"):
        member = cast.by_role(role)
        with workspace_scope(member.workspace_id):
            _, tokens[role] = api_token_create(member=member, name=role)

    def put(role, **data):
        return Client().put(
            "/api/v1/efficiency/settings/",
            data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tokens[role]}",
        )

    assert put("finance", grade_min_usd="5", signal_min_usd=None).status_code == 403
    assert put("admin", grade_min_usd="-1", signal_min_usd=None).status_code == 400
    ok = put("admin", grade_min_usd="2.5", signal_min_usd="0.25")
    assert ok.status_code == 200 and ok.json()["grade_min_usd"] == "2.500000000000"
    # The outsider writes their own workspace's floors, never A's.
    assert put("outsider", grade_min_usd="9", signal_min_usd=None).status_code == 200
    own = EfficiencySettings.objects.get(workspace=cast.workspace)
    assert (own.grade_min_usd, own.signal_min_usd) == (Decimal("2.5"), Decimal("0.25"))
    read = Client().get(
        "/api/v1/efficiency/settings/", HTTP_AUTHORIZATION=f"Bearer {tokens['finance']}"
    )
    assert read.json() == {"grade_min_usd": "2.500000000000", "signal_min_usd": "0.250000000000"}
    report = efficiency_compute(workspace=cast.workspace, at=T0)
    assert report.thresholds["grade_floor_usd"] == "2.500000000000"


def test_cache_switched_on_mid_period_the_fill_is_not_waste(scoped):
    ws, m = scoped.workspace, scoped.member
    bot = agent_create(workspace=ws, slug="bot", name="Bot", owner=m)
    at = [T0 + timedelta(seconds=4 * i) for i in range(10)]
    paid = [call(ws, m, bot, at[i], prompt="same") for i in range(4)]
    fill = call(ws, m, bot, at[4], prompt="same")  # the cache was just switched on: a miss
    for i in range(5, 10):
        call(ws, m, bot, at[i], prompt="same", hit=True)
    report = efficiency_compute(workspace=ws, at=T0)
    repeats = sum((r.cost_usd for r in paid[1:]), Decimal(0))
    assert _grade("agent", bot.pk).waste_usd == repeats  # not + fill.cost_usd
    miss = EfficiencySignal.objects.get(report=report, kind="cache_miss")
    assert miss.evidence["request_ids"] == [r.request_id for r in paid[1:]]
    loop = EfficiencySignal.objects.get(report=report, kind="thrashing")
    assert fill.request_id in loop.evidence["request_ids"]
    assert Decimal(loop.evidence["impact_usd"]) == repeats


def test_model_switched_shows_as_a_better_week_with_the_model_mix_as_cause(scoped):
    ws, m = scoped.workspace, scoped.member
    bot = agent_create(workspace=ws, slug="asker", name="Asker", owner=m)
    last = T0 - timedelta(days=7)
    for i in range(10):  # last week: one-liners on the frontier model
        call(ws, m, bot, last + timedelta(minutes=2 * i), model="gpt-4o", inp=300, out=200)
    for i in range(10):  # this week: the same calls on the cheap sibling
        call(ws, m, bot, T0 + timedelta(minutes=2 * i), inp=300, out=200)
    before = efficiency_compute(workspace=ws, at=last)
    now = efficiency_compute(workspace=ws, at=T0)
    old = EfficiencyGrade.objects.get(report=before, agent=bot)
    new = EfficiencyGrade.objects.get(report=now, agent=bot)
    saving = 10 * (price("gpt-4o", 300, 200) - price("gpt-4o-mini", 300, 200))
    assert (old.grade, old.waste_usd) == ("D", saving)
    assert (new.grade, new.waste_usd) == ("S", 0)
    trend = selectors.report_trends(workspace=ws, report=now, previous=before)[("agent", bot.pk)]
    assert trend.direction == "better" and trend.waste_change_usd == -saving
    assert trend.causes == (
        "openai/gpt-4o went from 100% to 0% of spend",
        "openai/gpt-4o-mini went from 0% to 100% of spend",
    )
    html = _login(scoped.finance).get(f"/efficiency/agent/{bot.pk}/?period=week").content
    # The detail page shows the latest week (this one) against the last.
    assert b'data-trend="better"' in html and b"gpt-4o went from 100% to 0%" in html


def test_floors_form_for_managers_and_command_rejects_unknown_workspace(scoped):
    assert (
        _login(scoped.finance).post("/efficiency/floors/", {"grade_min_usd": "3"}).status_code
        == 403
    )
    response = _login(scoped.admin).post(
        "/efficiency/floors/", {"grade_min_usd": "3", "signal_min_usd": ""}
    )
    assert response.status_code == 302
    own = EfficiencySettings.objects.get(workspace=scoped.workspace)
    assert (own.grade_min_usd, own.signal_min_usd) == (Decimal("3"), None)
    _login(scoped.admin).post("/efficiency/floors/", {"grade_min_usd": "-2"})
    own.refresh_from_db()
    assert own.grade_min_usd == Decimal("3")  # refused, unchanged
    with pytest.raises(CommandError):
        call_command("efficiency_recompute", workspace=10**9, stdout=io.StringIO())
