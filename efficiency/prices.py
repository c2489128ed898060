"""Catalog prices for "what would this call have cost on another model" (model overkill).

Through `billing.pricing.catalog_price` (the `genai-prices` offline snapshot, cached per model):
workspace overrides don't apply to a hypothetical model the workspace never called.
"""

from __future__ import annotations

from decimal import Decimal

from billing.pricing import catalog_price as _catalog


def catalog_price(
    provider: str, model: str, input_tokens: int, output_tokens: int
) -> Decimal | None:
    pricing = _catalog(provider, model)
    if pricing is None:
        return None
    return pricing.cost(input_tokens=input_tokens, output_tokens=output_tokens)
