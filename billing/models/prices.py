"""Per-workspace prices: negotiated rates and self-hosted models the catalog doesn't know.

Prices are exact Decimal USD per million tokens. A zero price is a real price (a self-hosted
model); a missing override falls back to the `genai-prices` catalog (`billing/pricing.py`).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from workspaces.models import TenantModel


class PriceOverride(TenantModel):
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200)
    input_per_mtok = models.DecimalField(max_digits=16, decimal_places=8)
    output_per_mtok = models.DecimalField(max_digits=16, decimal_places=8)
    # Null: cached input tokens cost the same as input tokens.
    cached_input_per_mtok = models.DecimalField(
        max_digits=16, decimal_places=8, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider", "model"], name="price_override_unique_model"
            ),
            models.CheckConstraint(
                condition=models.Q(input_per_mtok__gte=0, output_per_mtok__gte=0),
                name="price_override_non_negative",
            ),
        ]
        ordering = ["provider", "model"]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"
