"""The budget section of the workspace snapshot the gateway enforces from.

Registered with `gateway.snapshots.register_workspace_extender` (from `BillingConfig.ready`), it
adds to `alephant:ws:<id>`:

    "budgets": [{"id", "scope_type", "scope_id",
                 "metric": "usd"|"requests"|"tokens"|"request_usd"|"rpm",
                 "limit": int (nano-USD for usd/request_usd, else a count),
                 "period": "day"|"week"|"month"|"lifetime", "ladder": [50, 75, 90, 100],
                 "throttle_at": int|null, "throttle_rpm": int|null, "hard_stop": bool,
                 "model": "gpt-4o*"|null,
                 "base_limit": int, "increases": [[until epoch s, nano-USD], ...],
                 "request_url": "<site>/budget-requests/new/?budget=<id>"}],
    "settings": {"loop_breaker": bool, "loop_max_repeats": int|null, "loop_window_s": int|null}
    "rpm_floor": int   (overridden when the workspace set one)

`limit` already includes the approved temporary increases running at publish time; the gateway
recomputes it from `base_limit` + `increases` so an increase stops counting at its `until` on its
own (`gateway.hotpath.budgets.effective`), without waiting for a task to republish.
Every budget change republishes the snapshot on commit (`publish_budgets_on_commit`).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.conf import settings as django_settings
from django.utils import timezone

from billing.models import Budget, BudgetRequest, GuardrailSettings, RequestStatus
from core.money import NANOS_PER_USD
from gateway.snapshots import publish_workspace_on_commit, register_workspace_extender

logger = logging.getLogger(__name__)


def request_url(budget_id: int) -> str:
    return f"{django_settings.SITE_URL.rstrip('/')}/budget-requests/new/?budget={budget_id}"


def active_increases(workspace_id: int) -> dict[int, list[list[int]]]:
    """Approved increases still running, by budget: [[until epoch seconds, nano-USD], ...]."""
    found: dict[int, list[list[int]]] = defaultdict(list)
    rows = BudgetRequest.objects.filter(
        workspace_id=workspace_id, status=RequestStatus.APPROVED, until__gt=timezone.now()
    ).values_list("budget_id", "until", "approved_usd")
    for budget_id, until, approved in rows:
        found[budget_id].append([int(until.timestamp()), int((approved or 0) * NANOS_PER_USD)])
    return found


def budget_entry(budget: Budget, increases: list[list[int]] | None = None) -> dict:
    base = budget.limit_units
    entry = {
        "id": budget.pk,
        "scope_type": budget.scope_type,
        "scope_id": budget.scope_id,
        "metric": budget.metric,
        "limit": base + sum(nanos for _until, nanos in increases or ()),
        "period": budget.period,
        "ladder": list(budget.ladder or []),
        "throttle_at": budget.throttle_at,
        "throttle_rpm": budget.throttle_rpm,
        "hard_stop": budget.hard_stop,
        "model": budget.model_filter or None,
        "request_url": request_url(budget.pk),
    }
    if budget.scope_key:  # property "<name>=<value>" or customer id: matched on the call
        entry["scope_key"] = budget.scope_key
    if increases and budget.metric == "usd":
        entry["base_limit"] = base
        entry["increases"] = increases
    else:
        entry["limit"] = base
    return entry


def budgets_section(workspace_id: int) -> list[dict]:
    increases = active_increases(workspace_id)
    return [
        budget_entry(b, increases.get(b.pk))
        for b in Budget.objects.filter(workspace_id=workspace_id).order_by("id")
    ]


def extend_workspace_snapshot(workspace_id: int, snapshot: dict) -> None:
    """Runs inside the workspace scope (called by `gateway.snapshots.build_workspace_snapshot`)."""
    snapshot["budgets"] = budgets_section(workspace_id)
    settings = GuardrailSettings.objects.filter(workspace_id=workspace_id).first()
    section = snapshot.setdefault("settings", {})
    section.update(
        {
            "loop_breaker": bool(settings and settings.loop_breaker),
            "loop_max_repeats": settings.loop_max_repeats if settings else None,
            "loop_window_s": settings.loop_window_s if settings else None,
        }
    )
    if settings and settings.rpm_floor:
        snapshot["rpm_floor"] = settings.rpm_floor


def register() -> None:
    register_workspace_extender(extend_workspace_snapshot)


def publish_budgets_on_commit(workspace_id: int) -> None:
    publish_workspace_on_commit(workspace_id)
