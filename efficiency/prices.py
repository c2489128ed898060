"""Catalog prices for "what would this call have cost on another model" (model overkill).

Straight from the `genai-prices` offline snapshot, the same catalog `billing/pricing.py` uses;
workspace overrides don't apply to a hypothetical model the workspace never called.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from genai_prices import Usage, calc_price


@functools.lru_cache(maxsize=4096)
def catalog_price(provider: str, model: str, input_tokens: int, output_tokens: int) -> Decimal | None:
    try:
        result = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            model_ref=model,
            provider_id=provider,
        )
    except LookupError:
        return None
    return Decimal(result.total_price)
