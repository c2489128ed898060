"""What every spend page shares: the chosen period, the base context, row links."""

from __future__ import annotations

from urllib.parse import urlencode

from django.utils import timezone

from attribution import selectors
from attribution.periods import period_from_params
from workspaces.decorators import WorkspaceRequest

# URL segment -> (rollup dimension, heading)
SEGMENTS = {
    "members": ("member", "Members"),
    "agents": ("agent", "Agents"),
    "departments": ("department", "Departments"),
    "keys": ("gateway_key", "Gateway keys"),
    "models": ("model", "Models"),
    "providers": ("provider", "Providers"),
    "properties": ("property", "Custom properties"),
}
DIMENSION_SEGMENT = {dim: seg for seg, (dim, _h) in SEGMENTS.items()} | {"session": "sessions"}
MAX_PAGE = 100_000  # past it the OFFSET would overflow Postgres' bigint (a 500, not a page)


def period_of(request: WorkspaceRequest):
    return period_from_params(request.GET, tz=request.workspace.tz, now=timezone.now())


def base_context(request: WorkspaceRequest, period, **extra) -> dict:
    return {
        "period": period,
        "period_query": period.query(),
        "period_qs": urlencode(period.query()),
        "today": timezone.localdate(),
        **extra,
    }


def link_for(dimension: str, key: str) -> str | None:
    """The drill-down URL of a row, or None for the unattributed bucket."""
    segment = DIMENSION_SEGMENT.get(dimension)
    if not key or segment is None:
        return None
    return f"/spend/{segment}/{key}/"


def page_number(request: WorkspaceRequest) -> int:
    try:
        return min(max(int(request.GET.get("page", "1")), 1), MAX_PAGE)
    except ValueError:
        return 1


def label_recent(ws, recent: list) -> None:
    """Give each recent request its member's and agent's display names (one query each)."""
    labels = {
        dim: selectors.labels_for(
            workspace=ws,
            dimension=dim,
            keys=sorted({str(getattr(r, f"{dim}_id")) for r in recent if getattr(r, f"{dim}_id")}),
        )
        for dim in ("member", "agent")
    }
    for r in recent:
        r.member_label = labels["member"].get(str(r.member_id), "") if r.member_id else ""
        r.agent_label = labels["agent"].get(str(r.agent_id), "") if r.agent_id else ""


def export_slug(request: WorkspaceRequest, period, page: str = "") -> str:
    """CSV file names say which workspace and which period they hold (the table name follows):
    `acme-member-3-2026-11-01_2026-11-30-by-model.csv`."""
    parts = [request.workspace.slug, page.replace("/", "_")]
    if period is not None:
        parts.append(f"{period.start:%Y-%m-%d}_{period.last_day:%Y-%m-%d}")
    return "-".join(p for p in parts if p)
