"""Scheduled spend reports: figures from the ledger for the last closed week/month, sent once per
department and period (a second run sends nothing), to the department's managers and finance."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum

from alephant.celery import app
from billing.models import SpendReport, UsageRecord
from billing.services.alerts import alert_channel_create
from billing.services.budgets import budget_create
from billing.services.spend_reports import report_period_last_closed, spend_reports_send_due
from tests.factories import UsageRecordFactory
from workspaces.tenancy import workspace_scope

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday


def _at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 12, 0, tzinfo=UTC)


def _ledger(cast):
    eng = cast.member.department
    rows = [
        (_at(24), Decimal("1.25"), "gpt-4o", eng),  # last week
        (_at(27), Decimal("0.75"), "gpt-4o-mini", eng),  # last week
        (_at(18), Decimal("0.50"), "gpt-4o", eng),  # the week before, same month
        (_at(1, 12), Decimal("3"), "gpt-4o", eng),  # this week: not reported yet
        (_at(25), Decimal("9"), "gpt-4o", None),  # no department
    ]
    for when, cost, model, department in rows:
        UsageRecordFactory(
            workspace=cast.workspace,
            member=cast.member,
            department=department,
            model=model,
            cost_usd=cost,
            created_at=when,
        )
    budget_create(
        workspace=cast.workspace,
        actor=None,
        scope_type="department",
        scope_id=eng.pk,
        amount_usd=Decimal("10"),
        period="week",
    )
    alert_channel_create(
        workspace=cast.workspace, actor=None, kind="email", name="cfo", emails=["cfo@a.example"]
    )
    return eng


def _ledger_sum(cast, department, period) -> Decimal:
    return UsageRecord.objects.filter(
        workspace=cast.workspace,
        department=department,
        created_at__gte=period.start,
        created_at__lt=period.end,
    ).aggregate(t=Sum("cost_usd"))["t"]


def test_weekly_report_totals_are_the_ledger_and_a_rerun_sends_nothing(cast, mailoutbox):
    with workspace_scope(cast.workspace.pk):
        eng = _ledger(cast)
        period = report_period_last_closed(workspace=cast.workspace, cadence="week", now=NOW)
        assert (period.start, period.end) == (
            datetime(2026, 11, 23, tzinfo=UTC),
            datetime(2026, 11, 30, tzinfo=UTC),
        )
        assert spend_reports_send_due(workspace=cast.workspace, cadence="week", now=NOW) == 1
        report = SpendReport.objects.get(department=eng, cadence="week")
        assert report.spend_usd == _ledger_sum(cast, eng, period) == Decimal("2.00")
        assert report.sent_at is not None
    (mail,) = mailoutbox
    # No owner/admin sits in Engineering: the workspace's owner stands in, with finance and the
    # email channel's extra address.
    assert sorted(mail.to) == ["cfo@a.example", "finance@a.example", "owner@a.example"]
    assert "Engineering: weekly spend, 2026-11-23 to 2026-11-30" in mail.subject
    body = mail.body
    assert "Spend: $2.00" in body and "Budget: $10.00 (20% used)" in body
    assert "Previous week: $0.50 (change +$1.50)" in body
    assert "member@a.example: $2.00" in body
    assert "gpt-4o: $1.25" in body and "gpt-4o-mini: $0.75" in body
    assert "Biggest changes:\n  member@a.example: +$1.50" in body
    with workspace_scope(cast.workspace.pk):
        assert spend_reports_send_due(workspace=cast.workspace, cadence="week", now=NOW) == 0
        assert SpendReport.objects.count() == 1
    assert len(mailoutbox) == 1


def test_monthly_report_is_last_month_from_the_ledger(cast, mailoutbox):
    with workspace_scope(cast.workspace.pk):
        eng = _ledger(cast)
        period = report_period_last_closed(workspace=cast.workspace, cadence="month", now=NOW)
        assert spend_reports_send_due(workspace=cast.workspace, cadence="month", now=NOW) == 1
        report = SpendReport.objects.get(department=eng, cadence="month")
        assert report.spend_usd == _ledger_sum(cast, eng, period) == Decimal("2.50")
        assert report.data["spend"] == "2.500000000000"
        assert spend_reports_send_due(workspace=cast.workspace, cadence="month", now=NOW) == 0
    (mail,) = mailoutbox
    assert "monthly spend, 2026-11-01 to 2026-12-01" in mail.subject
    assert "Spend: $2.50" in mail.body and "Budget:" not in mail.body  # the budget is weekly


def test_a_quiet_department_gets_no_mail_and_the_beat_entry_is_a_task(cast, mailoutbox):
    with workspace_scope(cast.workspace.pk):
        assert spend_reports_send_due(workspace=cast.workspace, cadence="week", now=NOW) == 1
    assert mailoutbox == []
    entry = settings.CELERY_BEAT_SCHEDULE["billing-spend-reports"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
