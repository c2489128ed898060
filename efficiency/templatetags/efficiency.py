"""`{% efficiency_grade kind id as grade %}`: the latest weekly grade of a member, agent or
department in the current workspace (the drill-down card uses it)."""

from __future__ import annotations

from django import template

from efficiency.findings import SIGNAL_LABELS
from efficiency.selectors import entity_grade, grade_signals

register = template.Library()

CARD_KINDS = ("member", "agent", "department")


@register.simple_tag(takes_context=True)
def efficiency_grade(context, entity_kind, entity_id):
    workspace = context.get("workspace")
    if workspace is None or entity_kind not in CARD_KINDS:
        return None
    try:
        pk = int(str(entity_id))
    except (TypeError, ValueError):
        return None
    grade = entity_grade(workspace=workspace, entity_kind=entity_kind, entity_id=pk)
    if grade is not None:
        grade.top_signals = list(grade_signals(workspace=workspace, grade=grade)[:3])
        for signal in grade.top_signals:
            signal.label = SIGNAL_LABELS.get(signal.kind, signal.kind)
    return grade
