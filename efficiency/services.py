"""Writes: compute a workspace's efficiency report for one period from the ledger, and mail
the weekly digest. Both run inside the caller's workspace scope (a task or a request)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import UsageRecord
from core.periods import period_bounds as core_period_bounds
from efficiency import grading, selectors
from efficiency.conf import Thresholds, thresholds
from efficiency.findings import Row
from efficiency.models import (
    EfficiencyGrade,
    EfficiencyReport,
    EfficiencySettings,
    EfficiencySignal,
    Period,
)
from efficiency.prices import catalog_price
from workspaces.models import Agent, Department, Member, Role, Workspace

ROW_FIELDS = (
    "request_id", "created_at", "member_id", "agent_id", "department_id", "session_id",
    "provider", "model", "input_tokens", "output_tokens", "cost_usd", "saved_usd", "cache_hit",
    "status_code", "error_type", "stream", "fingerprint",
)  # fmt: skip


def period_bounds(*, workspace: Workspace, period: str, at: datetime) -> tuple[datetime, datetime]:
    """The calendar week (Monday 00:00) or month holding `at`, in the workspace's time zone."""
    if period not in (Period.WEEK, Period.MONTH):
        raise ValueError(f"unknown period {period!r}")
    _key, start, end = core_period_bounds(str(period), workspace.time_zone, at.timestamp())
    assert start is not None and end is not None
    return start, end


def ledger_rows(*, workspace: Workspace, start: datetime, end: datetime) -> list[Row]:
    values = UsageRecord.objects.filter(
        workspace=workspace, created_at__gte=start, created_at__lt=end
    ).values_list(*ROW_FIELDS)
    return [
        Row(**dict(zip(ROW_FIELDS, v, strict=True)))
        for v in values.order_by("created_at", "request_id")
    ]


def _digest(rows: list[Row], used: dict[str, str], time_zone: str) -> str:
    h = hashlib.sha256(repr(sorted(used.items())).encode())
    h.update(time_zone.encode())
    for row in rows:
        h.update(repr(tuple(getattr(row, f) for f in ROW_FIELDS)).encode())
    return h.hexdigest()


def thresholds_used(t: Thresholds, floors: grading.Floors) -> dict[str, str]:
    """Every threshold and the two dollar floors, as exact strings (shown, and digested)."""
    return {**{k: str(v) for k, v in asdict(t).items()}, **floors.as_dict()}


@transaction.atomic
def efficiency_settings_set(
    *,
    workspace: Workspace,
    grade_min_usd: Decimal | None,
    signal_min_usd: Decimal | None,
) -> EfficiencySettings:
    """The workspace's own dollar floors (None: back to the default). Applies from the next
    compute; recompute to see it at once."""
    for name, value in (("grade_min_usd", grade_min_usd), ("signal_min_usd", signal_min_usd)):
        if value is not None and value < 0:
            raise ValidationError({name: ["Must be zero or more."]})
    obj, _ = EfficiencySettings.objects.update_or_create(
        workspace=workspace,
        defaults={
            "grade_min_usd": grade_min_usd,
            "signal_min_usd": signal_min_usd,
            "updated_at": timezone.now(),
        },
    )
    return obj


_OWNER_REF = re.compile(r"\b(agent|member) #(\d+)")


def _labels(workspace: Workspace, result: grading.Result) -> dict[tuple[str, int], str]:
    ids: dict[str, set[int]] = {"member": set(), "agent": set(), "department": set()}
    for g in result.grades:
        ids[g.entity_kind].add(g.entity_id)
    labels = {}
    for m in Member.objects.filter(workspace=workspace, pk__in=ids["member"]).select_related(
        "user"
    ):
        labels[("member", m.pk)] = m.user.name or m.user.email
    for a in Agent.objects.filter(workspace=workspace, pk__in=ids["agent"]):
        labels[("agent", a.pk)] = a.name or a.slug
    for d in Department.objects.filter(workspace=workspace, pk__in=ids["department"]):
        labels[("department", d.pk)] = d.name
    return labels


@transaction.atomic
def efficiency_compute(
    *, workspace: Workspace, period: str = Period.WEEK, at: datetime | None = None
) -> EfficiencyReport:
    """(Re)compute the report for the period holding `at` (default now). Idempotent: the same
    ledger gives the same grades, signals and evidence; the previous result is replaced."""
    start, end = period_bounds(workspace=workspace, period=period, at=at or timezone.now())
    t = thresholds()
    rows = ledger_rows(workspace=workspace, start=start, end=end)
    own = selectors.workspace_settings(workspace=workspace)
    result = grading.evaluate(
        rows, t, price=catalog_price, time_zone=workspace.time_zone,
        grade_min_usd=own.grade_min_usd if own else None,
        signal_min_usd=own.signal_min_usd if own else None,
    )  # fmt: skip
    used = thresholds_used(t, result.floors)

    report, _ = EfficiencyReport.objects.select_for_update().get_or_create(
        workspace=workspace, period=period, period_start=start, defaults={"period_end": end}
    )
    report.period_end = end
    report.computed_at = timezone.now()
    report.rows = result.rows
    report.spend_usd = result.spend_usd
    report.saved_usd = result.saved_usd
    report.input_digest = _digest(rows, used, workspace.time_zone)
    report.thresholds = {**used, "immaterial_findings": str(result.immaterial)}
    report.save()
    _store(workspace=workspace, report=report, result=result)
    return report


def efficiency_previous_ensure(
    *, workspace: Workspace, report: EfficiencyReport
) -> EfficiencyReport:
    """The report of the period just before `report`'s, computed once if it is missing (the
    trend compares the two)."""
    previous = selectors.previous_report(workspace=workspace, report=report)
    if previous is not None and previous.period_end == report.period_start:
        return previous
    before = report.period_start - timedelta(microseconds=1)
    return efficiency_compute(workspace=workspace, period=report.period, at=before)


def _store(*, workspace: Workspace, report: EfficiencyReport, result: grading.Result) -> None:
    """Replace the report's signals and grades (inside the compute's transaction)."""
    EfficiencyGrade.objects.filter(workspace=workspace, report=report).delete()
    EfficiencySignal.objects.filter(workspace=workspace, report=report).delete()
    labels = _labels(workspace, result)

    def named(text: str) -> str:
        # The engine names owners by id ("agent #7"); people read names.
        return _OWNER_REF.sub(lambda m: f"{m[1]} {labels.get((m[1], int(m[2])), '#' + m[2])}", text)

    EfficiencySignal.objects.bulk_create(
        EfficiencySignal(
            workspace=workspace, report=report, kind=f.kind, member_id=f.member_id,
            agent_id=f.agent_id, department_id=f.department_id, veto=f.veto,
            impact_usd=grading.money(f.impact_usd), summary=named(f.summary),
            evidence=f.evidence(), position=i,
        )
        for i, f in enumerate(result.findings)
    )  # fmt: skip
    rank: dict[str, int] = {}
    grades = []
    for g in result.grades:
        rank[g.entity_kind] = rank.get(g.entity_kind, 0) + 1
        grades.append(
            EfficiencyGrade(
                workspace=workspace, report=report, entity_kind=g.entity_kind,
                **{f"{g.entity_kind}_id": g.entity_id},
                label=labels.get((g.entity_kind, g.entity_id),
                                 f"{g.entity_kind} #{g.entity_id} (deleted)"),
                requests=g.requests, spend_usd=g.spend_usd, saved_usd=g.saved_usd,
                waste_usd=g.waste_usd, score=g.score, grade=g.grade,
                verdict="" if g.entity_kind == "department" else g.verdict,
                reason=named(g.reason), capped_by=g.capped_by, rank=rank[g.entity_kind],
                breakdown=_labelled(g.breakdown, labels),
            )
        )  # fmt: skip
    EfficiencyGrade.objects.bulk_create(grades)


def _labelled(breakdown: dict, labels: dict[tuple[str, int], str]) -> dict:
    def label(c: dict) -> dict:
        return {**c, "label": labels.get((c["kind"], c["id"]), f"{c['kind']} #{c['id']}")}

    out = dict(breakdown)
    for key in ("contributors", "via_agents"):
        if key in out:
            out[key] = [label(c) for c in out[key]]
    return out


def digest_recipients(*, workspace: Workspace) -> list[str]:
    """Finance members; the owners when the workspace has no finance member."""
    members = Member.objects.filter(workspace=workspace).select_related("user")
    finance = [m.user.email for m in members if m.role == Role.FINANCE and m.user.is_active]
    return finance or [m.user.email for m in members if m.role == Role.OWNER and m.user.is_active]


def _improved(grades: list[EfficiencyGrade], trends: dict) -> list[EfficiencyGrade]:
    """Members and agents better than the week before, the largest drop in avoidable dollars
    first (a fix leaves no waste, so it is not among the most avoidable: listed here)."""
    better = [
        g for g in grades
        if g.entity_kind != "department"
        and getattr(trends.get((g.entity_kind, g.entity_id)), "direction", "") == "better"
    ]  # fmt: skip
    return sorted(
        better,
        key=lambda g: (
            trends[(g.entity_kind, g.entity_id)].waste_change_usd,
            g.entity_kind,
            g.rank,
        ),
    )[:10]


def efficiency_digest_send(*, workspace: Workspace, at: datetime | None = None) -> int:
    """Mail last week's grades to finance. Returns the number of recipients (0: nothing sent)."""
    last_week = (at or timezone.now()) - timedelta(days=7)
    report = efficiency_compute(workspace=workspace, period=Period.WEEK, at=last_week)
    recipients = digest_recipients(workspace=workspace)
    if not recipients or not report.rows:
        return 0
    grades = list(report.grades.all())
    # The week before, for each row's trend (and its cause: cache hits, model mix).
    previous = efficiency_previous_ensure(workspace=workspace, report=report)
    trends = selectors.report_trends(workspace=workspace, report=report, previous=previous)
    for g in grades:
        g.trend = trends.get((g.entity_kind, g.entity_id))  # type: ignore[attr-defined]
    context = {
        "workspace": workspace,
        "report": report,
        "grades": grades,
        # Dollars first, like the page and the API.
        "worst": sorted(
            (g for g in grades if g.entity_kind != "department" and g.waste_usd > 0),
            key=lambda g: (-g.waste_usd, g.entity_kind, g.rank),
        )[:10],
        "waste_usd": sum((g.waste_usd for g in grades if g.entity_kind == "member"), Decimal(0)),
        "improved": _improved(grades, trends),
        "site_url": settings.SITE_URL.rstrip("/"),
    }
    subject = f"[Alephant] {workspace.name}: efficiency for the week of {report.period_start:%b %d}"
    send_mail(
        subject,
        render_to_string("efficiency/digest_email.txt", context),
        None,
        recipients,
        html_message=render_to_string("efficiency/digest_email.html", context),
    )
    return len(recipients)
