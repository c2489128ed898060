"""Prepaid budgets: a lifetime spend budget topped up (amount, note, audit entry). The budget's
amount grows by the top-up, so the gateway admits more as soon as the snapshot is republished;
the `BudgetTopUp` rows are its balance history."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction

from billing.models import Budget, BudgetTopUp
from billing.models.budgets import Metric, Period
from billing.snapshots import publish_budgets_on_commit
from workspaces.models import Member
from workspaces.services.audit import audit_record


@transaction.atomic
def budget_top_up(
    *, budget: Budget, actor: Member | None, amount_usd: object, note: str = ""
) -> BudgetTopUp:
    if budget.metric != Metric.USD or budget.period != Period.LIFETIME:
        raise ValidationError({"budget": "only a lifetime spend budget (prepaid) is topped up"})
    try:
        amount = Decimal(str(amount_usd)).quantize(Decimal("0.000001"))
    except InvalidOperation as exc:
        raise ValidationError({"amount_usd": "not a number"}) from exc
    if amount <= 0:
        raise ValidationError({"amount_usd": "a positive amount"})
    budget = Budget.objects.select_for_update().get(pk=budget.pk)
    before = budget.amount_usd or Decimal(0)
    budget.amount_usd = before + amount
    budget.save(update_fields=["amount_usd", "updated_at"])
    top_up = BudgetTopUp.objects.create(
        workspace_id=budget.workspace_id,
        budget=budget,
        amount_usd=amount,
        balance_after_usd=budget.amount_usd,
        note=note.strip()[:500],
        created_by=actor,
    )
    audit_record(
        workspace=budget.workspace,
        actor=actor,
        action="budget.top_up",
        target=budget,
        before={"amount_usd": str(before)},
        after={"amount_usd": str(budget.amount_usd), "top_up": str(amount), "note": top_up.note},
    )
    publish_budgets_on_commit(budget.workspace_id)
    return top_up
