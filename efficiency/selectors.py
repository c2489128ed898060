"""Reads for the ranking page, the drill-down card, the API and the digest."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from efficiency import trends
from efficiency.models import (
    EfficiencyGrade,
    EfficiencyReport,
    EfficiencySettings,
    EfficiencySignal,
    Period,
)
from workspaces.models import Workspace


def latest_report(*, workspace: Workspace, period: str = Period.WEEK) -> EfficiencyReport | None:
    return (
        EfficiencyReport.objects.filter(workspace=workspace, period=period)
        .order_by("-period_start")
        .first()
    )


def report_grades(
    *, workspace: Workspace, report: EfficiencyReport, entity_kind: str | None = None
) -> QuerySet[EfficiencyGrade]:
    qs = EfficiencyGrade.objects.filter(workspace=workspace, report=report)
    if entity_kind:
        qs = qs.filter(entity_kind=entity_kind)
    return qs.order_by("entity_kind", "rank")


def entity_grade(
    *, workspace: Workspace, entity_kind: str, entity_id: int, period: str = Period.WEEK
) -> EfficiencyGrade | None:
    report = latest_report(workspace=workspace, period=period)
    if report is None:
        return None
    return (
        EfficiencyGrade.objects.filter(
            workspace=workspace, report=report, entity_kind=entity_kind,
            **{f"{entity_kind}_id": entity_id},
        )
        .select_related("report")
        .first()
    )  # fmt: skip


def grade_signals(*, workspace: Workspace, grade: EfficiencyGrade) -> QuerySet[EfficiencySignal]:
    column = f"{grade.entity_kind}_id"
    return EfficiencySignal.objects.filter(
        Q(**{column: grade.entity_id}), workspace=workspace, report_id=grade.report_id
    ).order_by("-veto", "-impact_usd", "position")


def previous_report(*, workspace: Workspace, report: EfficiencyReport) -> EfficiencyReport | None:
    """The report of the period just before `report`'s (same kind of period), if computed."""
    return (
        EfficiencyReport.objects.filter(
            workspace=workspace, period=report.period, period_end__lte=report.period_start
        )
        .order_by("-period_start")
        .first()
    )


def report_trends(
    *, workspace: Workspace, report: EfficiencyReport, previous: EfficiencyReport | None
) -> dict[tuple[str, int | None], trends.Trend]:
    """Per entity of `report`: its trend against `previous` (entities new this period: none)."""
    if previous is None:
        return {}
    before = {
        (g.entity_kind, g.entity_id): g
        for g in EfficiencyGrade.objects.filter(workspace=workspace, report=previous)
    }
    out = {}
    for g in EfficiencyGrade.objects.filter(workspace=workspace, report=report):
        old = before.get((g.entity_kind, g.entity_id))
        if old is not None:
            out[(g.entity_kind, g.entity_id)] = trends.compare(
                previous_grade=old.grade, previous_waste=old.waste_usd,
                previous_facts=old.breakdown, grade=g.grade, waste=g.waste_usd,
                facts=g.breakdown,
            )  # fmt: skip
    return out


def workspace_settings(*, workspace: Workspace) -> EfficiencySettings | None:
    return EfficiencySettings.objects.filter(workspace=workspace).first()
