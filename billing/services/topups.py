"""Prepaid budgets and corrections.

A lifetime spend budget is topped up (amount, note, audit entry): its amount grows, so the
gateway admits more as soon as the snapshot is republished; the `BudgetTopUp` rows are its
balance history. A periodic budget is reset by hand (`budget_reset`, with a reason, audited)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing.models import Budget, BudgetRequest, BudgetTopUp, RequestStatus
from billing.models.budgets import Metric, Period
from billing.selectors import budget_statuses
from billing.snapshots import publish_budgets_on_commit
from core.money import NANOS_PER_USD
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


@transaction.atomic
def budget_reset(*, budget: Budget, actor: Member | None, reason: str, client) -> BudgetRequest:
    """A manual reset of a periodic budget (billing corrections): the ledger and counters stay
    true (spend is spend); the budget gets a credit of what the period has spent so far, until
    the period ends, so the rest of the period starts from zero. It is recorded as an approved
    increase (the gateway folds it in and drops it at the period's end by itself) and audited."""
    if budget.period == Period.LIFETIME or budget.metric != Metric.USD:
        raise ValidationError(
            {"budget": "only a periodic spend budget resets; top up a lifetime one"}
        )
    if not reason.strip():
        raise ValidationError({"reason": "say why"})
    status = budget_statuses(workspace=budget.workspace, budgets=[budget], client=client)[budget.pk]
    credit = Decimal(status.used) / NANOS_PER_USD
    if credit <= 0 or status.resets_at is None:
        raise ValidationError({"budget": "nothing spent this period: nothing to reset"})
    reset = BudgetRequest.objects.create(
        workspace_id=budget.workspace_id,
        budget=budget,
        requested_by=actor,
        amount_usd=credit.quantize(Decimal("0.000001")),
        approved_usd=credit.quantize(Decimal("0.000001")),
        reason=f"manual reset: {reason.strip()}"[:2000],
        until=status.resets_at,
        status=RequestStatus.APPROVED,
        decided_by=actor,
        decided_at=timezone.now(),
        decision_reason="manual reset",
    )
    audit_record(
        workspace=budget.workspace,
        actor=actor,
        action="budget.reset",
        target=budget,
        after={
            "credit_usd": str(reset.approved_usd),
            "until": reset.until.isoformat(),
            "reason": reason.strip(),
        },
    )
    publish_budgets_on_commit(budget.workspace_id)
    return reset
