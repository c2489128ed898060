"""Rollups: exact sums, idempotent windows, late rows, local days, every dimension."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from attribution.models import RollupState, SessionRollup, UsageRollup
from attribution.services.rollups import rollup_rebuild_range, rollup_workspace
from attribution.tasks import rollup_all
from billing.models import UsageRecord
from tests.attribution.factories import usage
from workspaces.models import Workspace
from workspaces.tenancy import workspace_scope

NOW = dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC)


def _snapshot(workspace) -> list[tuple]:
    return sorted(
        UsageRollup.objects.filter(workspace=workspace).values_list(
            "granularity",
            "bucket_start",
            "dimension",
            "key",
            "requests",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "cost_usd",
            "saved_usd",
            "errors",
            "cache_hits",
        )
    )


def _total(workspace, granularity="day", dimension="workspace") -> Decimal:
    return UsageRollup.objects.filter(
        workspace=workspace, granularity=granularity, dimension=dimension
    ).aggregate(s=Sum("cost_usd"))["s"] or Decimal(0)


def _traffic(cast):
    ws, m = cast.workspace, cast.member
    rows = [
        usage(
            ws,
            at=NOW - dt.timedelta(minutes=5),
            cost="0.000000000001",
            member=m,
            department=m.department,
            session_id="run-1",
            properties={"team": "search"},
        ),
        usage(
            ws,
            at=NOW - dt.timedelta(hours=3),
            cost="1.333333333333",
            member=m,
            model="gpt-4o",
            cached_tokens=20,
            cache_hit=True,
            saved_usd=Decimal("0.5"),
        ),
        usage(
            ws,
            at=NOW - dt.timedelta(days=2),
            cost="0.25",
            member=cast.admin,
            status_code=402,
            error_type="budget_exceeded",
            session_id="run-1",
        ),
        usage(
            ws,
            at=NOW - dt.timedelta(days=40),
            cost="7",
            provider="anthropic",
            model="claude-3-5-haiku",
        ),
    ]
    return rows


def test_rollups_equal_the_ledger_exactly_in_every_dimension(scoped):
    cast = scoped
    _traffic(cast)
    rollup_rebuild_range(
        workspace=cast.workspace, start=NOW - dt.timedelta(days=60), end=NOW + dt.timedelta(hours=1)
    )
    ledger = UsageRecord.objects.aggregate(s=Sum("cost_usd"))["s"]
    assert ledger == Decimal("8.583333333334")
    for granularity in ("hour", "day"):
        for dimension in (
            "workspace",
            "member",
            "agent",
            "department",
            "gateway_key",
            "provider",
            "model",
        ):
            assert _total(cast.workspace, granularity, dimension) == ledger, (
                granularity,
                dimension,
            )
    sessions = UsageRollup.objects.filter(granularity="day", dimension="session")
    assert sum(r.requests for r in sessions) == 2
    prop = UsageRollup.objects.get(granularity="hour", dimension="property")
    assert (prop.key, prop.cost_usd) == ("team=search", Decimal("0.000000000001"))
    models = {r.key: r for r in UsageRollup.objects.filter(granularity="day", dimension="model")}
    assert set(models) == {"openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku"}
    gpt4o = models["openai/gpt-4o"]
    assert (gpt4o.cache_hits, gpt4o.cached_tokens, gpt4o.saved_usd) == (1, 20, Decimal("0.5"))
    admin_row = UsageRollup.objects.get(
        granularity="day", dimension="member", key=str(cast.admin.pk)
    )
    assert (admin_row.requests, admin_row.errors) == (1, 1)
    for cross in ("member:model", "agent:model", "dept:model", "key:model", "model:member"):
        assert _total(cast.workspace, "day", cross) == ledger, cross
        assert _total(cast.workspace, "hour", cross) == ledger, cross
    mine = UsageRollup.objects.get(
        granularity="day", dimension="member:model", key=f"{cast.member.pk}|openai/gpt-4o"
    )
    assert mine.cost_usd == Decimal("1.333333333333")
    run = SessionRollup.objects.get(session_id="run-1")
    assert (run.requests, run.cost_usd, run.errors) == (2, Decimal("0.250000000001"), 1)
    assert run.last_at - run.first_at == dt.timedelta(days=2) - dt.timedelta(minutes=5)


def test_incremental_run_is_idempotent_and_picks_up_late_rows(scoped):
    cast = scoped
    _traffic(cast)
    first = rollup_workspace(workspace=cast.workspace, now=NOW)
    assert first.watermark == UsageRecord.objects.order_by("-id").first().id
    assert _total(cast.workspace) == UsageRecord.objects.aggregate(s=Sum("cost_usd"))["s"]
    before = _snapshot(cast.workspace)
    rollup_workspace(workspace=cast.workspace, now=NOW)
    assert _snapshot(cast.workspace) == before  # re-running changes nothing

    # A late row: written now, about a call 10 days ago. Its old window is reopened.
    usage(cast.workspace, at=NOW - dt.timedelta(days=10), cost="3.5", member=cast.member)
    rollup_workspace(workspace=cast.workspace, now=NOW)
    assert _total(cast.workspace) == Decimal("12.083333333334")
    assert _total(cast.workspace, "hour") == Decimal("12.083333333334")
    state = RollupState.objects.get()
    assert state.last_record_id == UsageRecord.objects.order_by("-id").first().id


def test_days_summed_from_hours_equal_days_from_the_ledger(scoped, monkeypatch):
    from attribution.services import rollups

    cast = scoped
    _traffic(cast)
    start, end = NOW - dt.timedelta(days=60), NOW + dt.timedelta(hours=1)
    rollup_rebuild_range(workspace=cast.workspace, start=start, end=end)
    from_hours = _snapshot(cast.workspace)
    monkeypatch.setattr(rollups, "_days_align_with_hours", lambda *_a: False)
    rollup_rebuild_range(workspace=cast.workspace, start=start, end=end)
    assert _snapshot(cast.workspace) == from_hours
    assert any(r[0] == "day" for r in from_hours)


def test_days_are_local_days_of_the_workspace(scoped):
    cast = scoped
    Workspace.objects.filter(pk=cast.workspace.pk).update(time_zone="Asia/Tokyo")
    ws = Workspace.objects.get(pk=cast.workspace.pk)
    # 16:00 UTC on the 19th is 01:00 on the 20th in Tokyo.
    usage(ws, at=dt.datetime(2026, 11, 19, 16, 0, tzinfo=dt.UTC), cost="2")
    usage(ws, at=dt.datetime(2026, 11, 19, 14, 0, tzinfo=dt.UTC), cost="1")
    rollup_workspace(workspace=ws, now=NOW)
    days = dict(
        UsageRollup.objects.filter(granularity="day", dimension="workspace").values_list(
            "bucket_start", "cost_usd"
        )
    )
    tokyo = ws.tz
    assert days == {
        dt.datetime(2026, 11, 20, tzinfo=tokyo): Decimal(2),
        dt.datetime(2026, 11, 19, tzinfo=tokyo): Decimal(1),
    }


def test_rollups_never_cross_workspaces(cast):
    with workspace_scope(cast.workspace.pk):
        usage(cast.workspace, at=NOW, cost="1")
    with workspace_scope(cast.other_workspace.pk):
        usage(cast.other_workspace, at=NOW, cost="5")
        rollup_workspace(workspace=cast.other_workspace, now=NOW)
        assert _total(cast.other_workspace) == Decimal(5)
        assert UsageRollup.objects.filter(workspace=cast.workspace).count() == 0
    with workspace_scope(cast.workspace.pk):
        rollup_workspace(workspace=cast.workspace, now=NOW)
        assert _total(cast.workspace) == Decimal(1)
        assert (
            UsageRollup.objects.count()
            == UsageRollup.objects.filter(workspace=cast.workspace).count()
        )


@pytest.mark.django_db(transaction=True)
def test_fan_out_task_runs_each_workspace_in_its_own_scope(settings):
    from tests.cast import build_cast

    settings.CELERY_TASK_ALWAYS_EAGER = True
    from alephant.celery import app

    app.conf.task_always_eager = True
    try:
        cast = build_cast(prefix="fan-")
        now = dt.datetime.now(dt.UTC)
        with workspace_scope(cast.workspace.pk):
            usage(cast.workspace, at=now, cost="0.3")
        with workspace_scope(cast.other_workspace.pk):
            usage(cast.other_workspace, at=now, cost="0.7")
        assert rollup_all() == 2
        with workspace_scope(cast.workspace.pk):
            assert _total(cast.workspace) == Decimal("0.3")
        with workspace_scope(cast.other_workspace.pk):
            assert _total(cast.other_workspace) == Decimal("0.7")
    finally:
        app.conf.task_always_eager = False


def test_session_summaries_flag_repeated_requests_incrementally(scoped):
    cast = scoped
    ws = cast.workspace
    for i in range(6):
        usage(
            ws,
            at=NOW - dt.timedelta(minutes=30 - i),
            session_id="looper",
            fingerprint="same",
            member=cast.member,
        )
    usage(ws, at=NOW - dt.timedelta(minutes=10), session_id="calm", member=cast.member)
    rollup_workspace(workspace=ws, now=NOW)
    assert SessionRollup.objects.get(session_id="looper").max_repeats == 6
    assert SessionRollup.objects.get(session_id="calm").max_repeats == 1
    # A late step of the calm run, hours earlier: its summary is rebuilt whole.
    usage(ws, at=NOW - dt.timedelta(hours=20), session_id="calm", member=cast.member, cost="2")
    rollup_workspace(workspace=ws, now=NOW)
    calm = SessionRollup.objects.get(session_id="calm")
    assert (calm.requests, calm.cost_usd) == (2, Decimal("2.001"))
    assert SessionRollup.objects.count() == 2
