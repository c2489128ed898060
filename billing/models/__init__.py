"""Billing models, one module per concern (the ledger, prices; budgets land beside them)."""

from billing.models.ledger import UsageRecord
from billing.models.prices import PriceOverride

__all__ = ["PriceOverride", "UsageRecord"]
