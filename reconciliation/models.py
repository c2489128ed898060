"""Reconciliation with the provider's own bill, per workspace.

* `AdminCredential`: a provider *admin* key (OpenAI `sk-admin-...`, Anthropic
  `sk-ant-admin...`), sealed in the vault like the call keys but kept apart from them: it can
  read the organization's costs, never make a model call, and the gateway never loads it.
* `ProviderDay` / `ProviderCostLine`: what the provider reported for one UTC day, replaced as a
  whole on every pull (late data is re-pulled for the last N days).
* `ReconciliationPolicy`: the alert thresholds (capture rate, daily drift) and the look-back.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from workspaces.models import TenantModel

DEFAULT_CAPTURE_THRESHOLD_PCT = Decimal("98")
DEFAULT_DRIFT_LIMIT_USD = Decimal("1.00")
DEFAULT_LOOKBACK_DAYS = 7


class AdminProvider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"


class AdminCredential(TenantModel):
    provider = models.CharField(max_length=32, choices=AdminProvider.choices)
    base_url = models.URLField(max_length=500, blank=True, default="")
    last4 = models.CharField(max_length=4, blank=True, default="")
    # AES-256-GCM under the workspace data key `data_key`; both base64.
    nonce = models.CharField(max_length=32)
    ciphertext = models.TextField()
    data_key = models.ForeignKey(
        "gateway.WorkspaceDataKey", on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "provider"], name="admin_cred_unique")
        ]

    def __repr__(self) -> str:  # no ciphertext in tracebacks
        return f"<AdminCredential {self.pk} {self.provider} ...{self.last4}>"


class ProviderDay(TenantModel):
    """One UTC day the provider answered for (`reported`) or left out (not yet billed)."""

    provider = models.CharField(max_length=32)
    day = models.DateField()
    reported = models.BooleanField(default=False)
    pulled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider", "day"], name="provider_day_unique"
            )
        ]


class LineKind(models.TextChoices):
    COST = "cost", "Cost"  # from the costs endpoint
    USAGE = "usage", "Usage"  # from the usage endpoint (tokens per key)


class ProviderCostLine(TenantModel):
    provider = models.CharField(max_length=32)
    day = models.DateField()
    kind = models.CharField(max_length=8, choices=LineKind.choices)
    model = models.CharField(max_length=200, blank=True, default="")
    # The provider's own key id (usage) or project/workspace id (cost), when it reports one.
    key_id = models.CharField(max_length=200, blank=True, default="")
    line_item = models.CharField(max_length=300, blank=True, default="")
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    input_tokens = models.BigIntegerField(default=0)  # including cached
    cached_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "provider", "day"], name="recon_line_ws_day"),
        ]


class ReconciliationPolicy(TenantModel):
    capture_threshold_pct = models.DecimalField(
        max_digits=6, decimal_places=2, default=DEFAULT_CAPTURE_THRESHOLD_PCT
    )
    drift_limit_usd = models.DecimalField(
        max_digits=18, decimal_places=6, default=DEFAULT_DRIFT_LIMIT_USD
    )
    lookback_days = models.PositiveSmallIntegerField(default=DEFAULT_LOOKBACK_DAYS)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="recon_policy_unique")]


class ProviderKeyLink(TenantModel):
    """Which provider-side key id (OpenAI `key_...`, Anthropic `apikey_...`) one of our call
    keys is, so the provider's per-key usage can be set against the ledger's per-credential
    figures. The provider never tells us this for a secret, so an admin sets it."""

    credential = models.OneToOneField(
        "gateway.ProviderCredential", on_delete=models.CASCADE, related_name="+"
    )
    provider_key_id = models.CharField(max_length=200)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider_key_id"], name="recon_key_link_unique"
            )
        ]
