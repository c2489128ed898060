"""Budget increase requests: a member (or admin) asks for more on a budget until a date.

An approved request *is* the temporary increase: `approved_usd` is added to the budget's limit
from `decided_at` to `until` (`billing/snapshots.py` folds it into the snapshot with its end,
and the gateway stops counting it at `until` by itself). `SignedLinkUse` remembers the approve /
deny links from Slack and email that were already used: each works once.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from workspaces.models import TenantModel


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"


class BudgetRequest(TenantModel):
    budget = models.ForeignKey("billing.Budget", on_delete=models.CASCADE, related_name="requests")
    requested_by = models.ForeignKey(
        "workspaces.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    amount_usd = models.DecimalField(max_digits=14, decimal_places=6)
    approved_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    reason = models.TextField(max_length=2000)
    until = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    decided_by = models.ForeignKey(
        "workspaces.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "status", "until"], name="budget_request_status")
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_usd__gt=0), name="budget_request_positive"),
            models.CheckConstraint(
                condition=Q(approved_usd__isnull=True) | Q(approved_usd__gt=0),
                name="budget_request_approved_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"request {self.pk} on budget {self.budget_id} ({self.status})"

    @property
    def is_active_increase(self) -> bool:
        return self.status == RequestStatus.APPROVED and self.until > timezone.now()


class SignedLinkUse(TenantModel):
    """One row per used approve/deny link (its nonce): a second click finds it and stops."""

    nonce = models.CharField(max_length=64)
    request = models.ForeignKey(BudgetRequest, on_delete=models.CASCADE, related_name="+")
    used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "nonce"], name="signed_link_once")
        ]


class BudgetTopUp(TenantModel):
    """A prepaid (lifetime) budget topped up: the budget's amount grows by `amount_usd`; the rows
    are its balance history."""

    budget = models.ForeignKey("billing.Budget", on_delete=models.CASCADE, related_name="top_ups")
    amount_usd = models.DecimalField(max_digits=14, decimal_places=6)
    balance_after_usd = models.DecimalField(max_digits=14, decimal_places=6)
    note = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        "workspaces.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_usd__gt=0), name="budget_topup_positive")
        ]
