"""Provider adapters, one module per family (see `base.py` for what they share).

`adapter_for(provider)` returns the adapter for a credential's provider id
(`gateway.models.Provider`).
"""

from __future__ import annotations

from typing import Any

from gateway.hotpath.providers.anthropic import AnthropicAdapter
from gateway.hotpath.providers.gemini import GeminiAdapter
from gateway.hotpath.providers.openai import AzureOpenAIAdapter, OpenAIAdapter

OPENAI_COMPATIBLE = (
    "openai",
    "mistral",
    "groq",
    "deepseek",
    "xai",
    "together",
    "fireworks",
    "openrouter",
    "ollama",
    "vllm",
    "openai-compatible",
)

_ADAPTERS: dict[str, Any] = {family: OpenAIAdapter(family) for family in OPENAI_COMPATIBLE}
_ADAPTERS["azure-openai"] = AzureOpenAIAdapter()
_ADAPTERS["anthropic"] = AnthropicAdapter()
_ADAPTERS["gemini"] = GeminiAdapter()

PROVIDERS = frozenset(_ADAPTERS)


def adapter_for(provider: str):
    return _ADAPTERS.get(provider)


def client_format(endpoint: str) -> str:
    return "anthropic" if endpoint == "messages" else "openai"
