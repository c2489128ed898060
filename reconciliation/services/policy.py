"""The workspace's reconciliation thresholds (owners and admins)."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from reconciliation.models import ReconciliationPolicy
from workspaces.models import Member, Workspace
from workspaces.services.audit import audit_record


@transaction.atomic
def reconciliation_policy_set(
    *,
    workspace: Workspace,
    actor: Member | None = None,
    capture_threshold_pct: Decimal,
    drift_limit_usd: Decimal,
    lookback_days: int,
) -> ReconciliationPolicy:
    if actor is not None and not actor.can_manage:
        raise PermissionDenied("Only owners and admins can change reconciliation thresholds.")
    errors = {}
    if not Decimal(0) <= capture_threshold_pct <= Decimal(100):
        errors["capture_threshold_pct"] = "Between 0 and 100."
    if drift_limit_usd < 0:
        errors["drift_limit_usd"] = "Zero or more."
    if not 1 <= lookback_days <= 31:
        errors["lookback_days"] = "Between 1 and 31 (the providers' page of daily buckets)."
    if errors:
        raise ValidationError(errors)
    policy, _ = ReconciliationPolicy.objects.update_or_create(
        workspace=workspace,
        defaults={
            "capture_threshold_pct": capture_threshold_pct,
            "drift_limit_usd": drift_limit_usd,
            "lookback_days": lookback_days,
        },
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="reconciliation_policy.set",
        target=policy,
        after={
            "capture_threshold_pct": str(capture_threshold_pct),
            "drift_limit_usd": str(drift_limit_usd),
            "lookback_days": lookback_days,
        },
    )
    return policy
