"""Scheduled spend reports: a weekly and a monthly report per department, to the department's
managers (its owners/admins) and the workspace's finance members, by email and through the
workspace's Slack and webhook channels.

Figures come from the ledger (`UsageRecord`), for the last *closed* period in the workspace's
time zone. A `SpendReport` row per department and period is claimed (and locked) before
anything is sent, so a re-run of the schedule, or two beat runs racing, sends nothing twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.models import AlertChannel, Budget, SpendReport, UsageRecord
from billing.models.alerts import ChannelKind
from billing.models.budgets import Metric, ScopeType
from billing.models.reports import ReportCadence
from billing.services.channels import DeliveryError, deliver_report
from core.money import format_usd
from core.periods import period_bounds
from workspaces.models import MANAGER_ROLES, Agent, Department, Member, Role, Workspace

log = logging.getLogger(__name__)
TOP = 5


@dataclass(frozen=True)
class ReportPeriod:
    cadence: str
    start: datetime
    end: datetime


def report_period_last_closed(*, workspace: Workspace, cadence: str, now: datetime) -> ReportPeriod:
    """The last whole week (Monday first) or month before `now`, in the workspace's zone."""
    _key, current_start, _end = period_bounds(cadence, workspace.time_zone, now.timestamp())
    assert current_start is not None  # a week or a month always has bounds
    _key, start, end = period_bounds(cadence, workspace.time_zone, current_start.timestamp() - 1)
    assert start is not None and end is not None
    return ReportPeriod(cadence=cadence, start=start, end=end)


def _usage(department: Department, start: datetime, end: datetime):
    return UsageRecord.objects.filter(
        workspace_id=department.workspace_id,
        department=department,
        created_at__gte=start,
        created_at__lt=end,
    )


def _top(rows, field: str) -> list[dict]:
    totals = (
        rows.exclude(**{f"{field}__isnull": True})
        .values(field)
        .annotate(total=Sum("cost_usd"))
        .order_by("-total", field)[:TOP]
    )
    return [{"id": r[field], "usd": r["total"]} for r in totals]


def _labels(workspace_id: int, members: set[int]) -> dict[int, str]:
    found = Member.objects.filter(workspace_id=workspace_id, pk__in=members).select_related("user")
    return {m.pk: m.user.email for m in found}


def _changes(rows, previous_rows) -> list[dict]:
    """Members whose spend moved most against the period before (either way)."""
    now = {r["member"]: r["t"] for r in rows.values("member").annotate(t=Sum("cost_usd"))}
    before = {
        r["member"]: r["t"] for r in previous_rows.values("member").annotate(t=Sum("cost_usd"))
    }
    deltas = [
        {
            "id": m,
            "usd": now.get(m, Decimal(0)),
            "change": now.get(m, Decimal(0)) - before.get(m, Decimal(0)),
        }
        for m in set(now) | set(before)
        if m is not None
    ]
    deltas = [d for d in deltas if d["change"] != 0]
    return sorted(deltas, key=lambda d: (-abs(d["change"]), d["id"]))[:TOP]


def spend_report_compute(*, department: Department, period: ReportPeriod) -> dict:
    """The report's figures, exact (Decimal dollars), from the ledger."""
    rows = _usage(department, period.start, period.end)
    length = period.end - period.start
    previous = _usage(department, period.start - length, period.start)
    if period.cadence == ReportCadence.MONTH:
        # Months differ in length: the previous month is its own calendar month.
        _k, prev_start, _e = period_bounds(
            "month", department.workspace.time_zone, period.start.timestamp() - 1
        )
        previous = _usage(department, prev_start, period.start)  # type: ignore[arg-type]
    spend = rows.aggregate(t=Sum("cost_usd"))["t"] or Decimal(0)
    previous_spend = previous.aggregate(t=Sum("cost_usd"))["t"] or Decimal(0)
    budgets = Budget.objects.filter(
        workspace_id=department.workspace_id,
        scope_type=ScopeType.DEPARTMENT,
        scope_id=department.pk,
        metric=Metric.USD,
        period=period.cadence,
    )
    budget_usd = sum((b.amount_usd or Decimal(0) for b in budgets), Decimal(0))
    return {
        "spend": spend,
        "previous_spend": previous_spend,
        "budget": budget_usd if budgets else None,
        "members": _top(rows, "member"),
        "agents": _top(rows, "agent"),
        "models": [
            {"id": r["model"], "usd": r["t"]}
            for r in rows.values("model").annotate(t=Sum("cost_usd")).order_by("-t", "model")[:TOP]
        ],
        "changes": _changes(rows, previous),
    }


def spend_report_recipients(*, department: Department) -> list[str]:
    """The department's managers (its owners and admins) and the workspace's finance members;
    the workspace's owners when the department has no manager."""
    members = Member.objects.filter(workspace_id=department.workspace_id).select_related("user")
    active = [m for m in members if m.user.is_active]
    managers = [m for m in active if m.department_id == department.pk and m.role in MANAGER_ROLES]
    if not managers:
        managers = [m for m in active if m.role == Role.OWNER]
    finance = [m for m in active if m.role == Role.FINANCE]
    return sorted({m.user.email for m in managers + finance})


def _pct(part: Decimal, whole: Decimal) -> str:
    return f"{(part * 100 / whole).quantize(Decimal(1))}%" if whole else "-"


def _render(department: Department, period: ReportPeriod, figures: dict) -> tuple[str, str]:
    tz = department.workspace.tz
    first, last = period.start.astimezone(tz), period.end.astimezone(tz)
    span = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
    title = f"{department.name}: {period.cadence}ly spend, {span}"
    spend, budget = figures["spend"], figures["budget"]
    lines = [f"Spend: {format_usd(spend)}"]
    if budget is not None:
        lines.append(f"Budget: {format_usd(budget)} ({_pct(spend, budget)} used)")
    change = spend - figures["previous_spend"]
    lines.append(
        f"Previous {period.cadence}: {format_usd(figures['previous_spend'])} "
        f"(change {'+' if change >= 0 else '-'}{format_usd(abs(change))})"
    )
    members = _labels(department.workspace_id, {r["id"] for r in figures["members"]})
    members |= _labels(department.workspace_id, {r["id"] for r in figures["changes"]})
    agents = dict(
        Agent.objects.filter(
            workspace_id=department.workspace_id, pk__in=[r["id"] for r in figures["agents"]]
        ).values_list("pk", "slug")
    )
    sections = (
        ("Top members", figures["members"], lambda r: members.get(r["id"], f"#{r['id']}")),
        ("Top agents", figures["agents"], lambda r: agents.get(r["id"], f"#{r['id']}")),
        ("Top models", figures["models"], lambda r: r["id"] or "-"),
    )
    for heading, rows, label in sections:
        if rows:
            lines += ["", f"{heading}:"]
            lines += [f"  {label(r)}: {format_usd(r['usd'])}" for r in rows]
    if figures["changes"]:
        lines += ["", "Biggest changes:"]
        for r in figures["changes"]:
            sign = "+" if r["change"] > 0 else "-"
            name = members.get(r["id"], f"#{r['id']}")
            lines.append(f"  {name}: {sign}{format_usd(abs(r['change']))}")
    lines += ["", f"{settings.SITE_URL.rstrip('/')}/spend/departments/{department.pk}/"]
    return title, "\n".join(lines)


def _json_figures(figures: dict) -> dict:
    """Decimals as exact strings, for the row and the webhook payload."""

    def plain(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(figures)


def _broadcast(report: SpendReport, *, title: str, text: str, recipients: list[str]) -> None:
    channels = list(AlertChannel.objects.filter(workspace_id=report.workspace_id, enabled=True))
    extra = {
        e for c in channels if c.kind == ChannelKind.EMAIL for e in c.emails or [] if "@" in str(e)
    }
    to = sorted(set(recipients) | extra)
    if to:
        send_mail(subject=f"[Alephant] {title}", message=text, from_email=None, recipient_list=to)
    payload = {
        "type": "report.spend",
        "workspace_id": report.workspace_id,
        "department_id": report.department_id,
        "cadence": report.cadence,
        "period_start": report.period_start.isoformat(),
        "period_end": report.period_end.isoformat(),
        "data": report.data,
    }
    for channel in channels:
        if channel.kind == ChannelKind.EMAIL:
            continue
        try:
            deliver_report(channel, title=title, text=text, payload=payload)
        except DeliveryError as exc:
            # A report is not retried channel by channel: the email went out; log and go on.
            log.warning("spend report %s to channel %s failed: %s", report.pk, channel.pk, exc)
    report.recipients = to


@transaction.atomic
def spend_report_send(*, department: Department, period: ReportPeriod) -> SpendReport | None:
    """Send one department's report for one period, once. None when it was already sent."""
    report, _created = SpendReport.objects.get_or_create(
        workspace_id=department.workspace_id,
        department=department,
        cadence=period.cadence,
        period_start=period.start,
        defaults={"period_end": period.end},
    )
    # The row lock makes a racing second run wait here, then see `sent_at` and stop.
    report = SpendReport.objects.select_for_update().get(pk=report.pk)
    if report.sent_at is not None:
        return None
    figures = spend_report_compute(department=department, period=period)
    title, text = _render(department, period, figures)
    report.spend_usd = figures["spend"]
    report.data = _json_figures(figures)
    if figures["spend"] or figures["previous_spend"]:
        # A department with no spend in either period gets no mail (its row still closes it).
        recipients = spend_report_recipients(department=department)
        _broadcast(report, title=title, text=text, recipients=recipients)
    report.sent_at = timezone.now()
    report.save()
    return report


def spend_reports_send_due(
    *, workspace: Workspace, cadence: str, now: datetime | None = None
) -> int:
    """Every department's report for the last closed week or month. Returns how many were
    closed now (sent, or recorded without mail when the department spent nothing)."""
    if cadence not in ReportCadence.values:
        raise ValueError(f"unknown cadence {cadence!r}")
    period = report_period_last_closed(
        workspace=workspace, cadence=cadence, now=now or timezone.now()
    )
    sent = 0
    for department in Department.objects.filter(workspace=workspace).select_related("workspace"):
        sent += spend_report_send(department=department, period=period) is not None
    return sent
