"""Scheduled spend reports: one row per department and period, so a report is sent once."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from workspaces.models import TenantModel


class ReportCadence(models.TextChoices):
    WEEK = "week", "Weekly"
    MONTH = "month", "Monthly"


class SpendReport(TenantModel):
    """A department's spend report for one closed period. The unique constraint is the
    idempotency key: a re-run of the schedule finds the row and sends nothing twice."""

    department = models.ForeignKey(
        "workspaces.Department", on_delete=models.CASCADE, related_name="+"
    )
    cadence = models.CharField(max_length=8, choices=ReportCadence.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    spend_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    data = models.JSONField(default=dict, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "department_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "department", "cadence", "period_start"],
                name="spend_report_once_per_period",
            )
        ]
