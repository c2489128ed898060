"""Model prices live in `core.pricing` (Django-free, shared with the gateway's hot path).

This module re-exports them so `billing.pricing` keeps working for the Django side.
"""

from core.pricing import (  # noqa: F401 - re-exported
    CATALOG_PROVIDER,
    MTOK,
    NANOS_PER_USD,
    ModelPricing,
    Rate,
    UnpricedModel,
    catalog_price,
    cost_usd,
    find_override,
    format_usd,
    resolve_price,
    usd_to_nanos,
)
