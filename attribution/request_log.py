"""The request log: ledger rows filtered by any attribution field, paged by cursor.

Keyset paging on (created_at, id), newest first, so page 10,000 costs what page 1 does at
10M rows (an OFFSET would scan every skipped row); each filter is one of the ledger's
(workspace, x, created_at) indexes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping

from django.db.models import Q, QuerySet

from attribution.periods import Period
from billing.models import UsageRecord
from workspaces.models import Workspace
from workspaces.tenancy import workspace_scope

FILTERS = (
    "member",
    "agent",
    "department",
    "key",
    "model",
    "provider",
    "status",
    "session",
    "property",
    "q",
)
ENTITY_COLUMNS = (
    ("member", "member_id"),
    ("agent", "agent_id"),
    ("key", "gateway_key_id"),
    ("department", "department_id"),
)
STATUSES = {
    "ok": Q(status_code__lt=400, error_type=""),
    "error": Q(status_code__gte=400) | ~Q(error_type=""),
    "blocked": Q(status_code__in=[402, 429]),
    "cached": Q(cache_hit=True),
}
EXPORT_CHUNK = 2000


class BadFilter(ValueError):
    """A filter value that cannot name anything (answered as an empty log, never a 500)."""


def _entity(q: Q, column: str, value: str) -> Q:
    if value == "none":
        return q & Q(**{f"{column}__isnull": True})
    if not value.isdigit() or len(value) > 18:
        raise BadFilter(column)
    return q & Q(**{column: int(value)})


def log_filter(params: Mapping[str, str]) -> Q:
    """The ledger condition of the log's query string (unknown keys are ignored)."""
    q = Q()
    for name, column in ENTITY_COLUMNS:
        if params.get(name):
            q = _entity(q, column, params[name])
    if params.get("model"):
        provider, slash, model = params["model"].partition("/")
        q &= Q(provider=provider, model=model) if slash else Q(model=provider)
    if params.get("provider"):
        q &= Q(provider=params["provider"])
    if params.get("status"):
        status = params["status"]
        if status in STATUSES:
            q &= STATUSES[status]
        elif status.isdigit() and len(status) <= 3:
            q &= Q(status_code=int(status))
        else:
            raise BadFilter("status")
    if params.get("session"):
        q &= Q(session_id=params["session"])
    if params.get("property"):
        name, eq, value = params["property"].partition("=")
        if not eq or not name.replace("_", "").replace("-", "").isalnum():
            raise BadFilter("property")
        q &= Q(**{f"properties__{name}": value})
    if params.get("q"):
        q &= Q(request_id=params["q"].strip())
    return q


def log_queryset(*, workspace: Workspace, period: Period, condition: Q) -> QuerySet:
    return UsageRecord.objects.filter(
        condition,
        workspace=workspace,
        created_at__gte=period.start_at,
        created_at__lt=period.end_at,
    ).order_by("-created_at", "-id")


def encode_cursor(row) -> str:
    return f"{row.created_at.astimezone(dt.UTC).isoformat()}_{row.id}"


def decode_cursor(value: str) -> tuple[dt.datetime, int] | None:
    at, _, ident = value.rpartition("_")
    try:
        when = dt.datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None or not ident.isdigit() or len(ident) > 18:
        return None
    return when, int(ident)


def log_page(qs: QuerySet, *, cursor: str = "", per_page: int = 50) -> tuple[list, str]:
    """One page after `cursor` and the cursor of the next page ("" on the last)."""
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        when, ident = after
        qs = qs.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=ident))
    rows = list(qs[: per_page + 1])
    page = rows[:per_page]
    return page, encode_cursor(page[-1]) if len(rows) > per_page else ""


def log_rows_chunked(*, workspace_id: int, build, decorate) -> Iterator[list]:
    """Every row of `build()`'s queryset in keyset chunks, each read in its own workspace
    scope: an export streams after the request's transaction ended (RLS needs a scope), and
    no scope is held open across a yield."""
    cursor = ""
    while True:
        with workspace_scope(workspace_id):
            rows, cursor = log_page(build(), cursor=cursor, per_page=EXPORT_CHUNK)
            decorate(rows)
        yield rows
        if not cursor:
            return
