"""Alert channels (where alerts go) and the alert history (what was sent, once).

`Alert.dedupe_key` is unique per workspace: a ladder step is `ladder:<budget>:<period>:<step>`,
so a second worker handling the same crossing (or the same stream event redelivered) inserts
nothing and sends nothing. Rollover re-arms by construction: the next period has another key.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from workspaces.models import TenantModel


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack incoming webhook"
    WEBHOOK = "webhook", "Webhook (HMAC-SHA256 signed)"


class AlertChannel(TenantModel):
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    name = models.CharField(max_length=120)
    # Webhook URL, or for Slack only a masked hint (a Slack webhook URL is itself a credential).
    # Email: blank (owners, admins, finance and the scope's member get it).
    url = models.URLField(max_length=500, blank=True, default="")
    # Extra email addresses for an email channel.
    emails = models.JSONField(default=list, blank=True)
    # Legacy plaintext column, always blank now: the webhook signing key and the Slack URL live
    # sealed below (billing/services/channel_secrets.py), shown once at creation, never again.
    secret = models.CharField(max_length=128, blank=True, default="")
    data_key = models.ForeignKey(
        "gateway.WorkspaceDataKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    sealed_nonce = models.CharField(max_length=64, blank=True, default="")
    sealed = models.TextField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="alert_channel_unique_name")
        ]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class AlertKind(models.TextChoices):
    LADDER = "ladder", "Budget step crossed"
    FORECAST = "forecast", "Forecast to exhaust"
    LOOP = "loop", "Agent loop"
    FAIL_OPEN = "fail_open", "Enforcement failed open"
    RECONCILIATION = "reconciliation", "Provider bill mismatch"
    TEST = "test", "Test alert"
    BUDGET_REQUEST = "budget_request", "Budget increase request"


class Alert(TenantModel):
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    dedupe_key = models.CharField(max_length=200)
    budget = models.ForeignKey(
        "billing.Budget", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    period_key = models.CharField(max_length=16, blank=True, default="")
    step = models.PositiveSmallIntegerField(null=True, blank=True)
    title = models.CharField(max_length=300)
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    # [{"channel_id", "kind", "status": "sent"|"failed"|"pending", "attempts", "error"}]
    deliveries = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Acknowledged alerts leave the "open" view of the feed; the row itself is history.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        "workspaces.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "dedupe_key"], name="alert_unique_dedupe")
        ]
        indexes = [models.Index(fields=["workspace", "created_at"], name="alert_ws_time")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title
