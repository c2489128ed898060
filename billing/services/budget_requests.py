"""Budget increase requests: create, approve (possibly less), deny, expire.

An approval is the temporary increase: it republishes the workspace snapshot on commit, so the
gateway honours it within its snapshot TTL (~1 s), and the snapshot carries the increase's end so
the gateway stops counting it at `until` by itself (`billing/snapshots.py`). Every step is
audit-logged; approvers hear of a new request (`budget_request_notifications`), the requester hears
the answer.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from billing.models import Budget, BudgetRequest, RequestStatus
from billing.models.budgets import Metric, ScopeType
from billing.services.budget_request_notify import (
    budget_request_notify_on_commit,
    budget_request_summary,
)
from billing.snapshots import publish_budgets_on_commit
from core.money import format_usd
from gateway.models import GatewayKey
from workspaces.models import SPEND_READER_ROLES, Agent, Member
from workspaces.services.audit import audit_record

logger = logging.getLogger(__name__)
MAX_DURATION = timedelta(days=366)
DECIDERS = SPEND_READER_ROLES  # owners, admins and finance approve or deny


def member_may_request(*, member: Member, budget: Budget) -> bool:
    """Deciders ask on any budget; a member for themselves, their agents and their keys."""
    if member.role in DECIDERS:
        return True
    if budget.scope_type == ScopeType.MEMBER:
        return budget.scope_id == member.pk
    if budget.scope_type == ScopeType.AGENT:
        return Agent.objects.filter(
            workspace_id=member.workspace_id, pk=budget.scope_id, owner=member
        ).exists()
    if budget.scope_type == ScopeType.KEY:
        return GatewayKey.objects.filter(
            workspace_id=member.workspace_id, pk=budget.scope_id, member=member
        ).exists()
    return False


def _positive(amount: object, field: str) -> Decimal:
    value = Decimal(str(amount))
    if value <= 0 or value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValidationError({field: "a positive amount with at most 6 decimals"})
    return value.quantize(Decimal("0.000001"))  # exact; the column's scale


@transaction.atomic
def budget_request_create(
    *, budget: Budget, actor: Member, amount_usd: object, reason: str, until: datetime
) -> BudgetRequest:
    if not member_may_request(member=actor, budget=budget):
        raise PermissionDenied("Members ask for more on their own, their agents' or keys' budgets.")
    if budget.metric != Metric.USD:
        raise ValidationError({"budget_id": "increases apply to spend (USD) budgets"})
    now = timezone.now()
    if until <= now or until > now + MAX_DURATION:
        raise ValidationError({"until": "a time in the future, within a year"})
    if not reason.strip():
        raise ValidationError({"reason": "say why"})
    request = BudgetRequest.objects.create(
        workspace_id=budget.workspace_id,
        budget=budget,
        requested_by=actor,
        amount_usd=_positive(amount_usd, "amount_usd"),
        reason=reason.strip(),
        until=until,
    )
    audit_record(
        workspace=budget.workspace,
        actor=actor,
        action="budget_request.create",
        target=request,
        after=budget_request_summary(request),
    )
    budget_request_notify_on_commit(request)
    return request


def _decidable(request: BudgetRequest, actor: Member | None) -> None:
    if actor is not None and actor.role not in DECIDERS:
        raise PermissionDenied("Only owners, admins and finance decide budget requests.")
    if actor is not None and actor.pk == request.requested_by_id:
        raise PermissionDenied("You cannot decide your own request.")
    if request.status != RequestStatus.PENDING:
        raise ValidationError({"status": f"this request is already {request.status}"})


def _decide(request: BudgetRequest, actor: Member | None, action: str, via: str) -> None:
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save()
    after = {**budget_request_summary(request), "via": via}
    audit_record(
        workspace=request.budget.workspace,
        actor=actor,
        action=f"budget_request.{action}",
        target=request,
        after=after,
    )
    requester_tell_on_commit(request)


@transaction.atomic
def budget_request_approve(
    *, request: BudgetRequest, actor: Member | None, amount_usd: object = None, via: str = "web"
) -> BudgetRequest:
    """Approve the asked amount or less. `actor=None`: a signed link (its holder decided)."""
    request = BudgetRequest.objects.select_for_update().get(pk=request.pk)
    _decidable(request, actor)
    amount = request.amount_usd if amount_usd in (None, "") else _positive(amount_usd, "amount_usd")
    if amount > request.amount_usd:
        raise ValidationError({"amount_usd": "at most the amount asked for"})
    if request.until <= timezone.now():
        raise ValidationError({"until": "this request's end has passed"})
    request.status = RequestStatus.APPROVED
    request.approved_usd = amount
    _decide(request, actor, "approve", via)
    publish_budgets_on_commit(request.workspace_id)
    return request


@transaction.atomic
def budget_request_deny(
    *, request: BudgetRequest, actor: Member | None, reason: str, via: str = "web"
) -> BudgetRequest:
    request = BudgetRequest.objects.select_for_update().get(pk=request.pk)
    _decidable(request, actor)
    if not reason.strip():
        raise ValidationError({"reason": "say why"})
    request.status = RequestStatus.DENIED
    request.decision_reason = reason.strip()
    _decide(request, actor, "deny", via)
    return request


@transaction.atomic
def budget_request_expire(*, workspace_id: int, now: datetime | None = None) -> int:
    """Pending requests whose end passed expire; approved ones that ended republish the
    snapshot (the gateway already stopped counting them at `until`; this tidies the entry)."""
    now = now or timezone.now()
    stale = list(
        BudgetRequest.objects.select_for_update()
        .filter(workspace_id=workspace_id, status=RequestStatus.PENDING, until__lte=now)
        .select_related("budget__workspace")
    )
    for request in stale:
        request.status = RequestStatus.EXPIRED
        request.decided_at = now
        request.save()
        audit_record(
            workspace=request.budget.workspace,
            actor=None,
            action="budget_request.expire",
            target=request,
            after=budget_request_summary(request),
        )
        requester_tell_on_commit(request)
    lapsed = BudgetRequest.objects.filter(
        workspace_id=workspace_id,
        status=RequestStatus.APPROVED,
        until__lte=now,
        until__gt=now - timedelta(minutes=10),
    ).exists()
    if stale or lapsed:
        publish_budgets_on_commit(workspace_id)
    return len(stale)


def requester_tell_on_commit(request: BudgetRequest) -> None:
    """The requester hears the answer by email (their request list shows it too). The message
    is built now, inside the workspace scope; it is sent after commit."""
    member = request.requested_by
    if member is None or not member.user.email:
        return
    answers: dict[str, str] = {
        RequestStatus.APPROVED: f"approved: +{format_usd(request.approved_usd or 0)} until "
        f"{request.until:%Y-%m-%d %H:%M} UTC",
        RequestStatus.DENIED: f"denied: {request.decision_reason}",
        RequestStatus.EXPIRED: "expired without a decision",
    }
    answer = answers.get(request.status, request.status)
    subject = f"[Alephant] Your budget request {request.pk} was {request.status}"
    body = (
        f"Your request for {format_usd(request.amount_usd)} on budget {request.budget_id} "
        f"was {answer}."
    )
    to = [member.user.email]

    def send() -> None:
        try:
            send_mail(subject=subject, message=body, from_email=None, recipient_list=to)
        except OSError:
            logger.warning("could not email the answer to budget request %s", request.pk)

    transaction.on_commit(send)
