"""Prices: our cached arithmetic equals the `genai-prices` catalog, overrides win, unpriced fails."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from billing.pricing import (
    UnpricedModel,
    cost_usd,
    resolve_price,
    usd_to_nanos,
)

FAMILY_MODELS = [
    ("openai", "openai", "gpt-4o-mini"),
    ("openai", "openai", "gpt-4o"),
    ("openai", "openai", "text-embedding-3-small"),
    ("anthropic", "anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "anthropic", "claude-sonnet-4-5"),  # tiered above 200k input tokens
    ("gemini", "google", "gemini-2.0-flash"),
    ("gemini", "google", "gemini-2.5-pro"),  # tiered
    ("azure-openai", "azure", "gpt-4o"),
    ("mistral", "mistral", "mistral-large-latest"),
    ("groq", "groq", "llama-3.3-70b-versatile"),
    ("deepseek", "deepseek", "deepseek-chat"),
    ("xai", "x-ai", "grok-3"),
    ("together", "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    ("openrouter", "openrouter", "openai/gpt-4o"),
]

USAGES = [(1000, 500, 0), (1234, 77, 200), (250_000, 4000, 10_000), (1, 0, 0), (0, 0, 0)]


@pytest.mark.parametrize(("family", "catalog_id", "model"), FAMILY_MODELS)
def test_cost_equals_catalog_price(family, catalog_id, model):
    for input_tokens, output_tokens, cached in USAGES:
        expected = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached),
            model_ref=model,
            provider_id=catalog_id,
        ).total_price
        got = cost_usd(
            family,
            model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
        )
        assert isinstance(got, Decimal)
        assert got == expected, (family, model, input_tokens, output_tokens, cached)


def test_cache_write_tokens_priced_like_catalog():
    expected = calc_price(
        Usage(
            input_tokens=5000, output_tokens=100, cache_write_tokens=3000, cache_read_tokens=1000
        ),
        model_ref="claude-3-5-haiku-latest",
        provider_id="anthropic",
    ).total_price
    got = cost_usd(
        "anthropic",
        "claude-3-5-haiku-latest",
        input_tokens=5000,
        output_tokens=100,
        cached_tokens=1000,
        cache_write_tokens=3000,
    )
    assert got == expected


def test_override_wins_and_is_exact():
    overrides = [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_per_mtok": "0.1",
            "output_per_mtok": "0.3",
            "cached_input_per_mtok": "0.01",
        }
    ]
    got = cost_usd(
        "openai",
        "gpt-4o-mini",
        input_tokens=1_000_000,
        output_tokens=2_000_000,
        cached_tokens=500_000,
        overrides=overrides,
    )
    assert got == Decimal("0.05") + Decimal("0.005") + Decimal("0.6")
    assert resolve_price("openai", "gpt-4o-mini", overrides).source == "override"


def test_unpriced_model_is_refused_unless_overridden():
    with pytest.raises(UnpricedModel, match="no known price"):
        resolve_price("vllm", "my-llama")
    with pytest.raises(UnpricedModel):
        resolve_price("openai", "definitely-not-a-model-xyz")
    zero = [
        {
            "provider": "vllm",
            "model": "my-llama",
            "input_per_mtok": "0",
            "output_per_mtok": "0",
            "cached_input_per_mtok": None,
        }
    ]
    assert cost_usd("vllm", "my-llama", input_tokens=10, output_tokens=10, overrides=zero) == 0


def test_nanos_round_up():
    assert usd_to_nanos(Decimal("0.0000000001")) == 1
    assert usd_to_nanos(Decimal("1.5")) == 1_500_000_000


def test_worst_case_bounds_any_actual_cost():
    price = resolve_price("openai", "gpt-4o")
    worst = price.worst_case(input_tokens=1000, max_output_tokens=256)
    assert worst >= price.cost(input_tokens=1000, output_tokens=256, cached_tokens=500)
