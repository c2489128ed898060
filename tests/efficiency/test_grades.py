"""The issue's scenarios on synthetic ledger rows in the real database (RLS on)."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from billing.pricing import cost_usd
from efficiency import grading
from efficiency.conf import thresholds
from efficiency.models import EfficiencyGrade, EfficiencyReport, EfficiencySignal
from efficiency.prices import catalog_price
from efficiency.selectors import entity_grade, grade_signals
from efficiency.services import efficiency_compute, ledger_rows, period_bounds
from tests.efficiency.conftest import T0
from workspaces.tenancy import workspace_scope


def _grade(workspace, kind, entity_id):
    return EfficiencyGrade.objects.get(
        workspace=workspace, entity_kind=kind, **{f"{kind}_id": entity_id}
    )


def test_looping_agent_gets_d_and_wasteful_with_the_loop_as_evidence(scoped, ledger, bot):
    ledger.varied(member=scoped.member, agent=bot, count=10)
    loop = [
        ledger.call(
            member=scoped.member,
            agent=bot,
            prompt="fix the failing test",
            session_id="run-7",
            at=T0 + timedelta(hours=2, seconds=4 * i),
        )
        for i in range(30)
    ]
    efficiency_compute(workspace=scoped.workspace, at=T0)

    grade = _grade(scoped.workspace, "agent", bot.pk)
    assert (grade.grade, grade.verdict, grade.capped_by) == ("D", "wasteful", "thrashing")
    assert grade.score <= 40
    assert "Agent thrashing" in grade.reason and "30 times" in grade.reason
    assert "agent Looper sent the same request" in grade.reason
    signal = grade_signals(workspace=scoped.workspace, grade=grade).first()
    assert signal.kind == "thrashing" and signal.veto
    assert signal.evidence["repeats"] == 30 and signal.evidence["session_id"] == "run-7"
    assert signal.evidence["request_ids"] == [r.request_id for r in loop]
    repeats_cost = sum((r.cost_usd for r in loop[1:]), Decimal(0))
    assert Decimal(signal.evidence["impact_usd"]) == repeats_cost
    # The owning member made no call of their own: not graded, the waste is "via agents".
    member = _grade(scoped.workspace, "member", scoped.member.pk)
    assert (member.grade, member.verdict, member.waste_usd) == ("", "", repeats_cost)
    assert [(c["label"], c["share_percent"]) for c in member.breakdown["via_agents"]] == [
        ("Looper", "100.0")
    ]
    # The department is graded on its waste ratio, never capped by one contributor's veto.
    department = _grade(scoped.workspace, "department", bot.department_id)
    assert (department.grade, department.capped_by) == ("D", "")
    assert "largest contributor agent Looper (100.0%" in department.reason


def test_runaway_run_is_thrashing_too(scoped, ledger, bot):
    for s in range(4):
        for i in range(4):
            ledger.call(
                member=scoped.member,
                agent=bot,
                session_id=f"ok-{s}",
                at=T0 + timedelta(minutes=10 * s + i),
            )
    for i in range(40):
        ledger.call(
            member=scoped.member,
            agent=bot,
            session_id="runaway",
            at=T0 + timedelta(hours=1, minutes=i),
        )
    efficiency_compute(workspace=scoped.workspace, at=T0)
    grade = _grade(scoped.workspace, "agent", bot.pk)
    assert grade.verdict == "wasteful" and grade.capped_by == "thrashing"
    signal = EfficiencySignal.objects.get(kind="thrashing", agent=bot)
    assert signal.evidence["pattern"] == "runaway" and signal.evidence["steps"] == 40


def test_frontier_model_on_one_line_prompts_raises_overkill_with_savings(scoped, ledger, helper):
    calls = [
        ledger.call(
            member=scoped.admin,
            agent=helper,
            model="gpt-4o",
            input_tokens=25,
            output_tokens=40,
            at=T0 + timedelta(minutes=7 * i),
        )
        for i in range(20)
    ]
    efficiency_compute(workspace=scoped.workspace, at=T0)

    signal = EfficiencySignal.objects.get(kind="model_overkill", agent=helper)
    mini = cost_usd("openai", "gpt-4o-mini", input_tokens=25, output_tokens=40)
    expected = sum((c.cost_usd - mini for c in calls), Decimal(0))
    assert signal.evidence["suggested_model"] == "gpt-4o-mini"
    assert Decimal(signal.evidence["savings_usd"]) == expected
    assert Decimal(signal.evidence["savings_usd"]) > 0
    assert signal.evidence["request_count"] == 20
    assert "gpt-4o-mini would have cost" in signal.summary
    grade = _grade(scoped.workspace, "agent", helper.pk)
    assert grade.verdict in ("questionable", "wasteful") and "overkill" in grade.reason


def test_short_calls_on_the_cheap_sibling_are_not_overkill(scoped, ledger, helper):
    for i in range(20):
        ledger.call(
            member=scoped.admin,
            agent=helper,
            model="gpt-4o-mini",
            input_tokens=25,
            output_tokens=40,
            at=T0 + timedelta(minutes=7 * i),
        )
    efficiency_compute(workspace=scoped.workspace, at=T0)
    assert not EfficiencySignal.objects.filter(kind="model_overkill").exists()


def _repeated_workload(ledger, member, agent, *, cached: bool):
    # The same question every 20 minutes: too slow to be a loop, but a cache would serve it.
    return [
        ledger.call(
            member=member,
            agent=agent,
            prompt="summarise the daily report",
            at=T0 + timedelta(minutes=20 * i),
            cache_hit=cached and i > 0,
        )
        for i in range(12)
    ]


def test_uncached_repeats_raise_cache_miss_with_dollars_lost(scoped, ledger, helper):
    calls = _repeated_workload(ledger, scoped.admin, helper, cached=False)
    efficiency_compute(workspace=scoped.workspace, at=T0)
    signal = EfficiencySignal.objects.get(kind="cache_miss", agent=helper)
    # Entries live one hour: calls at 0, 80, 160 ... minutes refill it; the rest were misses.
    refills = {0, 4, 8}
    lost = sum((c.cost_usd for i, c in enumerate(calls) if i not in refills), Decimal(0))
    assert Decimal(signal.evidence["dollars_lost"]) == lost
    assert signal.evidence["request_count"] == 9
    assert not EfficiencySignal.objects.filter(kind="thrashing").exists()


def test_cached_workload_stops_raising_cache_miss(scoped, ledger, helper):
    calls = _repeated_workload(ledger, scoped.admin, helper, cached=True)
    report = efficiency_compute(workspace=scoped.workspace, at=T0)
    assert not EfficiencySignal.objects.filter(kind="cache_miss").exists()
    grade = _grade(scoped.workspace, "agent", helper.pk)
    assert grade.saved_usd == sum((c.saved_usd for c in calls), Decimal(0))
    assert grade.saved_usd > 0 and report.saved_usd == grade.saved_usd
    assert grade.verdict == "justified"


def test_clean_varied_workload_gets_a_or_s_and_justified(scoped, ledger, helper):
    ledger.varied(member=scoped.admin, agent=helper, count=40)
    ledger.varied(member=scoped.owner, count=15, session_prefix="o")
    efficiency_compute(workspace=scoped.workspace, at=T0)
    for kind, pk in (("agent", helper.pk), ("member", scoped.owner.pk)):
        grade = _grade(scoped.workspace, kind, pk)
        assert grade.grade in ("S", "A"), grade.reason
        assert grade.verdict == "justified"
        assert "No avoidable spend" in grade.reason
    # The admin only called through their agent: no own calls to grade, nothing avoidable.
    admin = _grade(scoped.workspace, "member", scoped.admin.pk)
    assert (admin.grade, admin.waste_usd) == ("", 0)
    assert admin.reason.startswith("Own calls: Not enough spend to grade")
    assert not EfficiencySignal.objects.exists()


def test_context_bloat_in_a_session_that_resends_its_history(scoped, ledger, helper):
    for i in range(8):
        ledger.call(
            member=scoped.admin,
            agent=helper,
            session_id="chat-1",
            input_tokens=2000 * (i + 1),
            output_tokens=60,
            at=T0 + timedelta(minutes=i),
        )
    efficiency_compute(workspace=scoped.workspace, at=T0)
    signal = EfficiencySignal.objects.get(kind="context_bloat")
    assert signal.evidence["first_input_tokens"] == 2000
    assert signal.evidence["last_input_tokens"] == 16000
    assert Decimal(signal.evidence["impact_usd"]) > 0


def test_retry_storm_against_the_workspace_norm(scoped, ledger, bot, helper):
    ledger.varied(member=scoped.admin, agent=helper, count=40)
    for i in range(20):
        ledger.call(
            member=scoped.member,
            agent=bot,
            prompt=f"q{i % 4}",
            status_code=429,
            error_type="rate_limit_exceeded",
            at=T0 + timedelta(minutes=2 * i),
        )
    for i in range(10):
        ledger.call(
            member=scoped.member,
            agent=bot,
            prompt=f"q{i % 4}",
            at=T0 + timedelta(minutes=2 * i, seconds=30),
        )
    efficiency_compute(workspace=scoped.workspace, at=T0)
    signal = EfficiencySignal.objects.get(kind="retry_storm")
    assert signal.agent_id == bot.pk
    assert signal.evidence["errors"] == 20 and signal.evidence["workspace_norm"] == "0.000"
    assert not EfficiencySignal.objects.filter(kind="retry_storm", agent=helper).exists()


def test_off_hours_burst_without_a_human_session(scoped, ledger, bot):
    saturday_night = T0 + timedelta(days=3, hours=13)  # Sat 23:00 UTC
    for i in range(40):
        ledger.call(
            member=scoped.member,
            agent=bot,
            model="gpt-4o",
            input_tokens=50_000,
            output_tokens=2000,
            at=saturday_night + timedelta(minutes=i),
        )
    efficiency_compute(workspace=scoped.workspace, at=T0)
    signal = EfficiencySignal.objects.get(kind="off_hours")
    assert signal.evidence["calls"] == 40
    # The same burst with its member at the keyboard that hour is not flagged.
    EfficiencySignal.objects.all().delete()
    ledger.call(member=scoped.member, at=saturday_night + timedelta(minutes=5))
    efficiency_compute(workspace=scoped.workspace, at=T0)
    assert not EfficiencySignal.objects.filter(kind="off_hours").exists()


def test_grades_are_deterministic_for_the_same_ledger(scoped, ledger, bot, helper):
    ledger.varied(member=scoped.admin, agent=helper, count=25)
    for i in range(12):
        ledger.call(member=scoped.member, agent=bot, prompt="again", at=T0 + timedelta(seconds=i))
        ledger.call(
            member=scoped.admin,
            model="gpt-4o",
            input_tokens=20,
            output_tokens=20,
            at=T0 + timedelta(minutes=i),
        )

    def snapshot():
        report = efficiency_compute(workspace=scoped.workspace, at=T0)
        grades = list(
            EfficiencyGrade.objects.filter(report=report)
            .order_by("entity_kind", "rank")
            .values_list(
                "entity_kind",
                "member_id",
                "agent_id",
                "department_id",
                "score",
                "grade",
                "verdict",
                "reason",
                "waste_usd",
                "rank",
            )
        )
        signals = list(
            EfficiencySignal.objects.filter(report=report)
            .order_by("position")
            .values_list("kind", "agent_id", "member_id", "impact_usd", "summary", "evidence")
        )
        return report.input_digest, grades, signals

    first, second = snapshot(), snapshot()
    assert first == second and len(first[1]) >= 5 and len(first[2]) >= 2
    assert EfficiencyReport.objects.count() == 1

    # And the pure engine does not care about the order the rows arrive in.
    start, end = period_bounds(workspace=scoped.workspace, period="week", at=T0)
    rows = ledger_rows(workspace=scoped.workspace, start=start, end=end)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    a = grading.evaluate(rows, thresholds(), price=catalog_price)
    b = grading.evaluate(shuffled, thresholds(), price=catalog_price)
    assert [(g.entity_kind, g.entity_id, g.score, g.reason) for g in a.grades] == [
        (g.entity_kind, g.entity_id, g.score, g.reason) for g in b.grades
    ]
    assert [f.evidence() for f in a.findings] == [f.evidence() for f in b.findings]


def test_thresholds_are_settings(scoped, ledger, bot, settings):
    for i in range(4):
        ledger.call(member=scoped.member, agent=bot, prompt="x", at=T0 + timedelta(seconds=i))
    efficiency_compute(workspace=scoped.workspace, at=T0)
    assert not EfficiencySignal.objects.filter(kind="thrashing").exists()
    settings.ALEPHANT_EFF_THRASH_MIN_REPEATS = "3"
    efficiency_compute(workspace=scoped.workspace, at=T0)
    assert EfficiencySignal.objects.filter(kind="thrashing").exists()


def test_card_selector_and_tenant_isolation(scoped, ledger, helper):
    ledger.varied(member=scoped.admin, agent=helper, count=5)
    efficiency_compute(workspace=scoped.workspace, at=T0)
    grade = entity_grade(workspace=scoped.workspace, entity_kind="agent", entity_id=helper.pk)
    assert grade is not None and grade.label == "Helper"
    with workspace_scope(scoped.other_workspace.pk):
        assert EfficiencyGrade.objects.count() == 0
        assert EfficiencySignal.objects.count() == 0
        assert EfficiencyReport.objects.count() == 0


def test_periods_are_local_calendar_weeks_and_months(scoped):
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    ws = scoped.workspace
    ws.time_zone = "America/New_York"
    ny = ZoneInfo("America/New_York")
    # Sunday 23:30 in New York is Monday 04:30 UTC: still the week that began Monday Oct 26.
    at = datetime(2026, 11, 2, 4, 30, tzinfo=T0.tzinfo)
    start, end = period_bounds(workspace=ws, period="week", at=at)
    assert start == datetime(2026, 10, 26, tzinfo=ny) and end == datetime(2026, 11, 2, tzinfo=ny)
    # DST ended on Nov 1: that local week is an hour longer in real time.
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 7 * 86400 + 3600
    start, end = period_bounds(workspace=ws, period="month", at=at)
    assert start == datetime(2026, 11, 1, tzinfo=ny) and end == datetime(2026, 12, 1, tzinfo=ny)


def test_compute_task_runs_in_the_workspace_scope(scoped, ledger, helper):
    from django.utils import timezone

    from efficiency.tasks import efficiency_compute as compute_task

    week_start, _ = period_bounds(workspace=scoped.workspace, period="week", at=timezone.now())
    ledger.varied(member=scoped.admin, agent=helper, count=3, start=week_start)
    report_id = compute_task(workspace_id=scoped.workspace.pk)
    assert EfficiencyReport.objects.get(pk=report_id).rows == 3
