"""The alert feed a person reads: names instead of ids, repeats grouped, filters.

A group is what one acknowledgement clears: a budget's crossings in one period (50 %, 75 %,
... of November), its forecast for that period, or the loops of one agent or session. Twenty
identical loop rows read "Agent loop on agent summarizer x20 since 00:30".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Q

from attribution.selectors import labels_for
from billing.models import Alert
from workspaces.models import Workspace

SCOPES = ("workspace", "department", "member", "agent", "key", "session")
STATES = ("open", "acknowledged", "all")
MAX_ALERTS = 2000  # the feed groups the newest 2,000 alerts of the filter


def group_key(alert: Alert) -> str:
    if alert.kind == "loop":
        return f"loop:{(alert.data or {}).get('subject', '')}"
    if alert.budget_id:
        return f"{alert.kind}:{alert.budget_id}:{alert.period_key}"
    return f"{alert.kind}:{alert.dedupe_key}"


def group_filter(alert: Alert) -> Q:
    """The alerts of `alert`'s group (for acknowledging them together)."""
    if alert.kind == "loop":
        return Q(kind="loop", data__subject=(alert.data or {}).get("subject", ""))
    if alert.budget_id:
        return Q(kind=alert.kind, budget_id=alert.budget_id, period_key=alert.period_key)
    return Q(pk=alert.pk)


@dataclass
class AlertGroup:
    key: str
    kind: str
    kind_label: str
    title: str
    scope: str
    latest: Alert
    first_at: dt.datetime
    last_at: dt.datetime
    count: int = 0
    steps: list[int] = field(default_factory=list)
    open: int = 0

    @property
    def acknowledged(self) -> bool:
        return self.open == 0


def _loop_subject(alert: Alert) -> tuple[str, str]:
    subject = (alert.data or {}).get("subject", "")
    return ("agent", subject[1:]) if subject.startswith("a") else ("session", subject[1:])


def _names(workspace: Workspace, alerts: list[Alert]) -> dict[tuple[str, str], str]:
    wanted: dict[str, set[str]] = {}
    for a in alerts:
        if a.kind == "loop":
            scope, ident = _loop_subject(a)
        elif a.budget is not None:
            scope, ident = a.budget.scope_type, str(a.budget.scope_id)
        else:
            continue
        wanted.setdefault(scope, set()).add(ident)
    out: dict[tuple[str, str], str] = {}
    dims = {"department": "department", "member": "member", "agent": "agent", "key": "gateway_key"}
    for scope, idents in wanted.items():
        if scope in dims:
            labels = labels_for(workspace=workspace, dimension=dims[scope], keys=sorted(idents))
            out.update({(scope, i): labels[i] for i in idents})
        else:
            out.update({(scope, i): i or workspace.name for i in idents})
    return out


def _title(alert: Alert, names, workspace: Workspace) -> tuple[str, str]:
    if alert.kind == "loop":
        scope, ident = _loop_subject(alert)
        return f"Agent loop on {scope} {names.get((scope, ident), ident)}", scope
    budget = alert.budget
    if budget is None:
        return alert.title, ""
    scope = budget.scope_type
    who = workspace.name if scope == "workspace" else names[(scope, str(budget.scope_id))]
    what = budget.name or f"{budget.get_period_display().lower()} {budget.get_metric_display()}"
    verb = "on track to run out" if alert.kind == "forecast" else "crossed"
    return f"Budget “{what}” on {budget.get_scope_type_display().lower()} {who} {verb}", scope


def alert_queryset(*, workspace: Workspace, kind: str = "", scope: str = "", state: str = "open"):
    qs = Alert.objects.filter(workspace=workspace).select_related("budget")
    if kind:
        qs = qs.filter(kind=kind)
    if scope in ("agent", "session"):
        prefix = scope[0]
        qs = qs.filter(
            Q(budget__scope_type=scope) | Q(kind="loop", data__subject__startswith=prefix)
        )
    elif scope:
        qs = qs.filter(budget__scope_type=scope)
    if state == "open":
        qs = qs.filter(acknowledged_at__isnull=True)
    elif state == "acknowledged":
        qs = qs.filter(acknowledged_at__isnull=False)
    return qs.order_by("-created_at", "-id")


def alert_groups(*, workspace: Workspace, qs, limit: int | None = None) -> list[AlertGroup]:
    """Groups of the alerts in `qs`, the most recently active first."""
    alerts = list(qs[:MAX_ALERTS])
    names = _names(workspace, alerts)
    groups: dict[str, AlertGroup] = {}
    for a in alerts:  # newest first: the first seen of a group is its latest
        key = group_key(a)
        g = groups.get(key)
        if g is None:
            title, scope = _title(a, names, workspace)
            g = groups[key] = AlertGroup(
                key, a.kind, a.get_kind_display(), title, scope, a, a.created_at, a.created_at
            )
        g.count += 1
        g.first_at = a.created_at
        g.open += a.acknowledged_at is None
        if a.step is not None and a.step not in g.steps:
            g.steps.append(a.step)
    out = list(groups.values())
    for g in out:
        g.steps.sort()
    return out[:limit] if limit else out
