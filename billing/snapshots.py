"""The budget section of the workspace snapshot the gateway enforces from.

Registered with `gateway.snapshots.register_workspace_extender` (from `BillingConfig.ready`), it
adds to `alephant:ws:<id>`:

    "budgets": [{"id", "scope_type", "scope_id",
                 "metric": "usd"|"requests"|"tokens"|"request_usd"|"rpm",
                 "limit": int (nano-USD for usd/request_usd, else a count),
                 "period": "day"|"week"|"month"|"lifetime", "ladder": [50, 75, 90, 100],
                 "throttle_at": int|null, "throttle_rpm": int|null, "hard_stop": bool,
                 "model": "gpt-4o*"|null}],
    "settings": {"loop_breaker": bool, "loop_max_repeats": int|null, "loop_window_s": int|null}
    "rpm_floor": int   (overridden when the workspace set one)

Every budget change republishes the snapshot on commit (`publish_budgets_on_commit`).
"""

from __future__ import annotations

import logging

from billing.models import Budget, GuardrailSettings
from gateway.snapshots import publish_workspace_on_commit, register_workspace_extender

logger = logging.getLogger(__name__)


def budget_entry(budget: Budget) -> dict:
    return {
        "id": budget.pk,
        "scope_type": budget.scope_type,
        "scope_id": budget.scope_id,
        "metric": budget.metric,
        "limit": budget.limit_units,
        "period": budget.period,
        "ladder": list(budget.ladder or []),
        "throttle_at": budget.throttle_at,
        "throttle_rpm": budget.throttle_rpm,
        "hard_stop": budget.hard_stop,
        "model": budget.model_filter or None,
    }


def budgets_section(workspace_id: int) -> list[dict]:
    return [
        budget_entry(b) for b in Budget.objects.filter(workspace_id=workspace_id).order_by("id")
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
