"""Model prices: the `genai-prices` offline catalog plus per-workspace overrides. Django-free.

The gateway calls this on every request, so a model's prices are resolved once and cached
(`genai_prices.calc_price` costs ~0.2 ms a call, mostly the model lookup); the arithmetic is
then done here, exactly as the catalog does it (`tests/billing/test_pricing.py` checks it
against `calc_price`):

* input tokens include cached (cache-read) and cache-write tokens; those are priced at their
  own rates when the model has them, at the input rate otherwise;
* tiered prices are "cliff" tiers: past a threshold of total input tokens, the tier's rate
  applies to every token of that kind.

Unpriced never means free: a model neither the catalog nor the workspace prices raises
`UnpricedModel`. A zero price set by an override (a self-hosted model) is a real price.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from core.model_aliases import catalog_model
from core.modelnames import model_name_problem
from core.money import NANOS_PER_USD as _NANOS

MTOK = Decimal(1_000_000)
NANOS_PER_USD = Decimal(_NANOS)
_ZERO = Decimal(0)

# Our provider family -> the catalog's provider id. Self-hosted families have no catalog
# price: the workspace prices them with an override (zero is allowed).
CATALOG_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "azure-openai": "azure",
    "azure": "azure",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "ollama": None,
    "vllm": None,
    "openai-compatible": None,
    "generic": None,
}

_CATALOG_TTL_S = 3600.0  # catalog prices can change with time (dated price windows)


class UnpricedModel(LookupError):
    """Neither the catalog nor the workspace has a price for this model."""

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(
            f"model {model!r} on provider {provider!r} has no known price; "
            "a workspace admin can price it with a price override"
        )
        self.provider = provider
        self.model = model


@dataclass(frozen=True)
class Rate:
    """USD per million tokens, with optional cliff tiers on total input tokens."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()  # (start, price), ascending

    def at(self, total_input_tokens: int) -> Decimal:
        for start, price in reversed(self.tiers):
            if total_input_tokens > start:
                return price
        return self.base


def _rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return Rate(value)
    base = getattr(value, "base", None)
    tiers = getattr(value, "tiers", None)
    if base is not None and tiers is not None:
        return Rate(Decimal(base), tuple((int(t.start), Decimal(t.price)) for t in tiers))
    return Rate(Decimal(str(value)))


@dataclass(frozen=True)
class ModelPricing:
    provider: str
    model: str
    source: str  # "override" | "catalog"
    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    per_request: Decimal = _ZERO  # USD per call
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def cost(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> Decimal:
        """Exact USD for one call. `input_tokens` includes cached and cache-write tokens."""
        total_in = max(0, int(input_tokens))
        cached = min(max(0, int(cached_tokens)), total_in)
        written = min(max(0, int(cache_write_tokens)), total_in - cached)
        plain = total_in - cached - written
        amount = plain * self.input.at(total_in)
        amount += cached * (self.cache_read or self.input).at(total_in)
        amount += written * (self.cache_write or self.input).at(total_in)
        amount += max(0, int(output_tokens)) * self.output.at(total_in)
        return amount / MTOK + self.per_request

    def worst_case(self, *, input_tokens: int, max_output_tokens: int) -> Decimal:
        """Upper bound for a reservation: nothing cached, every output token produced."""
        return self.cost(input_tokens=input_tokens, output_tokens=max_output_tokens)

    def public(self) -> dict[str, str | None]:
        """Base prices per million tokens, as strings, for `/v1/models` and the UI."""
        return {
            "input_per_mtok": str(self.input.base),
            "output_per_mtok": str(self.output.base),
            "cached_input_per_mtok": str(self.cache_read.base) if self.cache_read else None,
            "source": self.source,
        }


_catalog_cache: dict[tuple[str, str], tuple[float, ModelPricing | None]] = {}


def _catalog_lookup(provider: str, model: str) -> ModelPricing | None:
    catalog_id = CATALOG_PROVIDER.get(provider)
    if catalog_id is None:
        return None
    from datetime import UTC, datetime

    from genai_prices import data_snapshot

    # Exact id or explicit alias only: genai_prices' own matcher is loose and would price
    # `gemini-2.5-pro:x#gemini-2.0-flash-lite` as flash-lite (see core/model_aliases.py).
    if model_name_problem(model) is not None:
        return None
    info = catalog_model(data_snapshot.get_snapshot(), catalog_id, model)
    if info is None:
        return None
    prices = info.get_prices(datetime.now(tz=UTC))
    input_rate = _rate(getattr(prices, "input_mtok", None))
    output_rate = _rate(getattr(prices, "output_mtok", None))
    if input_rate is None and output_rate is None:
        return None
    requests_k = getattr(prices, "requests_kcount", None)
    return ModelPricing(
        provider=provider,
        model=model,
        source="catalog",
        input=input_rate or Rate(_ZERO),
        output=output_rate or Rate(_ZERO),
        cache_read=_rate(getattr(prices, "cache_read_mtok", None)),
        cache_write=_rate(getattr(prices, "cache_write_mtok", None)),
        per_request=(Decimal(requests_k) / 1000) if requests_k is not None else _ZERO,
        extra={"catalog_id": info.id},
    )


def catalog_price(provider: str, model: str) -> ModelPricing | None:
    key = (provider, model)
    now = time.monotonic()
    hit = _catalog_cache.get(key)
    if hit is not None and now - hit[0] < _CATALOG_TTL_S:
        return hit[1]
    pricing = _catalog_lookup(provider, model)
    if len(_catalog_cache) > 10_000:  # unbounded model names must not grow memory forever
        _catalog_cache.clear()
    _catalog_cache[key] = (now, pricing)
    return pricing


def _override_pricing(provider: str, model: str, row: Mapping[str, Any]) -> ModelPricing:
    cached = row.get("cached_input_per_mtok")
    return ModelPricing(
        provider=provider,
        model=model,
        source="override",
        input=Rate(Decimal(str(row["input_per_mtok"]))),
        output=Rate(Decimal(str(row["output_per_mtok"]))),
        cache_read=Rate(Decimal(str(cached))) if cached not in (None, "") else None,
    )


def find_override(
    provider: str, model: str, overrides: Iterable[Mapping[str, Any]] | None
) -> Mapping[str, Any] | None:
    if not overrides:
        return None
    lowered = model.lower()
    for row in overrides:
        if row.get("provider") == provider and str(row.get("model", "")).lower() == lowered:
            return row
    return None


def resolve_price(
    provider: str, model: str, overrides: Iterable[Mapping[str, Any]] | None = None
) -> ModelPricing:
    """The workspace's price for `provider/model`: its override, else the catalog's.

    Raises `UnpricedModel` when neither knows the model.
    """
    row = find_override(provider, model, overrides)
    if row is not None:
        return _override_pricing(provider, model, row)
    pricing = catalog_price(provider, model)
    if pricing is None:
        raise UnpricedModel(provider, model)
    return pricing


def cost_usd(
    provider: str,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    overrides: Iterable[Mapping[str, Any]] | None = None,
) -> Decimal:
    return resolve_price(provider, model, overrides).cost(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
    )


def usd_to_nanos(amount: Decimal) -> int:
    """Integer nano-dollars for Redis counters, rounded up (a reservation never undershoots)."""
    return int((amount * NANOS_PER_USD).to_integral_value(rounding=ROUND_CEILING))
