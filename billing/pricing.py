"""Model prices live in `core.pricing` (Django-free, shared with the gateway's hot path).

This module re-exports them so `billing.pricing` keeps working for the Django side.
"""

from core.money import NANOS_PER_USD  # noqa: F401 - the one constant, re-exported
from core.pricing import (  # noqa: F401 - re-exported
    CATALOG_PROVIDER,
    MTOK,
    ModelPricing,
    Rate,
    UnpricedModel,
    catalog_price,
    cost_usd,
    find_override,
    resolve_price,
    usd_to_nanos,
)
