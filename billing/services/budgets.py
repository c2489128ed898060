"""Writes for budgets, quotas and guardrail settings. Every change is audit-logged and
republishes the workspace snapshot on commit, so the gateway enforces it within ~1 s."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from billing.models import Budget, GuardrailSettings
from billing.models.budgets import (
    KEYED_SCOPES,
    MONEY_METRICS,
    Metric,
    Period,
    ScopeType,
    default_ladder,
)
from billing.snapshots import publish_budgets_on_commit
from gateway.models import GatewayKey
from workspaces.access import get_in_workspace
from workspaces.models import Agent, Department, Member, Workspace
from workspaces.services.audit import audit_record

BUDGET_FIELDS = (
    "name",
    "scope_type",
    "scope_id",
    "scope_key",
    "metric",
    "amount_usd",
    "limit_count",
    "period",
    "ladder",
    "throttle_at",
    "throttle_rpm",
    "hard_stop",
    "model_filter",
)


def budget_summary(budget: Budget) -> dict:
    return {
        name: (str(getattr(budget, name)) if name == "amount_usd" else getattr(budget, name))
        for name in BUDGET_FIELDS
    }


def scope_resolve(*, workspace: Workspace, scope_type: str, scope_id: object) -> int:
    """The scope's id if it exists in this workspace; ValidationError (-> 400) otherwise."""
    if scope_type not in ScopeType.values:
        raise ValidationError({"scope_type": f"one of {', '.join(ScopeType.values)}"})
    if scope_type == ScopeType.WORKSPACE or scope_type in KEYED_SCOPES:
        if scope_id not in (None, "") and str(scope_id) != str(workspace.pk):
            raise ValidationError({"scope_id": "unknown workspace"})
        return workspace.pk
    model: Any
    if scope_type == ScopeType.KEY:
        model = GatewayKey
    else:
        model = {"department": Department, "member": Member, "agent": Agent}[scope_type]
    try:
        return get_in_workspace(model, workspace=workspace, pk=scope_id).pk
    except Http404 as exc:
        raise ValidationError({"scope_id": f"unknown {scope_type}"}) from exc


def scope_key_from(data: dict) -> None:
    """`property_name` + `property_value`, or `customer_id`, into `scope_key` (in place)."""
    name = (data.pop("property_name", None) or "").strip().lower()
    value = data.pop("property_value", None)
    customer = data.pop("customer_id", None)
    scope_type = data.get("scope_type")
    if scope_type == ScopeType.PROPERTY:
        if not name or "=" in name or value in (None, ""):
            raise ValidationError({"property_name": "a property name and value are required"})
        data["scope_key"] = f"{name}={value}"
    elif scope_type == ScopeType.CUSTOMER:
        if not customer:
            raise ValidationError({"customer_id": "required for a customer budget"})
        data["scope_key"] = str(customer)
    elif scope_type is not None:
        data["scope_key"] = ""


def _apply(budget: Budget, data: dict) -> None:
    for name in BUDGET_FIELDS:
        if name in data:
            setattr(budget, name, data[name])
    if budget.amount_usd is not None and not isinstance(budget.amount_usd, Decimal):
        try:
            budget.amount_usd = Decimal(str(budget.amount_usd))
        except InvalidOperation as exc:
            raise ValidationError({"amount_usd": "not a number"}) from exc
    if budget.metric in MONEY_METRICS:
        budget.limit_count = None
    else:
        budget.amount_usd = None
    if budget.period not in Period.values:
        raise ValidationError({"period": f"one of {', '.join(Period.values)}"})
    if budget.metric not in Metric.values:
        raise ValidationError({"metric": f"one of {', '.join(Metric.values)}"})
    if budget.ladder is None:
        budget.ladder = default_ladder()


@transaction.atomic
def budget_create(*, workspace: Workspace, actor: Member | None, **data: Any) -> Budget:
    scope_key_from(data)
    data["scope_id"] = scope_resolve(
        workspace=workspace, scope_type=data.get("scope_type", ""), scope_id=data.get("scope_id")
    )
    budget = Budget(workspace=workspace, created_by=actor)
    _apply(budget, data)
    budget.full_clean()
    budget.save()
    audit_record(
        workspace=workspace,
        actor=actor,
        action="budget.create",
        target=budget,
        after=budget_summary(budget),
    )
    publish_budgets_on_commit(workspace.pk)
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, actor: Member | None, **data: Any) -> Budget:
    before = budget_summary(budget)
    if {"property_name", "property_value", "customer_id"} & set(data):
        data.setdefault("scope_type", budget.scope_type)
    scope_key_from(data)
    if "scope_type" in data or "scope_id" in data:
        data["scope_id"] = scope_resolve(
            workspace=budget.workspace,
            scope_type=data.get("scope_type", budget.scope_type),
            scope_id=data.get("scope_id", budget.scope_id),
        )
    _apply(budget, data)
    budget.full_clean()
    budget.save()
    audit_record(
        workspace=budget.workspace,
        actor=actor,
        action="budget.update",
        target=budget,
        before=before,
        after=budget_summary(budget),
    )
    publish_budgets_on_commit(budget.workspace_id)
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget, actor: Member | None) -> None:
    workspace = budget.workspace
    audit_record(
        workspace=workspace,
        actor=actor,
        action="budget.delete",
        target=budget,
        before=budget_summary(budget),
    )
    budget.delete()
    publish_budgets_on_commit(workspace.pk)


@transaction.atomic
def guardrails_update(
    *, workspace: Workspace, actor: Member | None, **data: Any
) -> GuardrailSettings:
    settings, _ = GuardrailSettings.objects.get_or_create(workspace=workspace)
    before = {k: getattr(settings, k) for k in data}
    for name in ("loop_breaker", "loop_max_repeats", "loop_window_s", "rpm_floor"):
        if name in data:
            setattr(settings, name, data[name])
    settings.full_clean()
    settings.save()
    audit_record(
        workspace=workspace,
        actor=actor,
        action="guardrails.update",
        target_type="billing.guardrailsettings",
        target_id=settings.pk,
        target_label="guardrails",
        before=before,
        after={k: getattr(settings, k) for k in data},
    )
    publish_budgets_on_commit(workspace.pk)
    return settings
