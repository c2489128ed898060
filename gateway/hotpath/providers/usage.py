"""Token usage in each wire format: read from an answer or chunk, written back for a client.

One module so a translation (OpenAI client, Anthropic upstream, or the reverse) reads and writes
usage without importing another provider's adapter.
"""

from __future__ import annotations

from typing import Any

from gateway.hotpath.providers.base import Usage, count, section


def _openai_usage_object(data: Any) -> dict[str, Any] | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if isinstance(usage, dict):
        return usage
    # Groq (older API versions) reports stream usage under `x_groq.usage` on the last chunk.
    usage = section(data, "x_groq").get("usage")
    return usage if isinstance(usage, dict) else None


def openai_usage(endpoint: str, data: Any) -> Usage:
    """Usage of an OpenAI-format answer or chunk, across the compatible families' spellings."""
    usage = _openai_usage_object(data)
    if usage is None:
        return Usage()
    if endpoint == "responses":
        return Usage(
            input_tokens=count(usage.get("input_tokens")),
            output_tokens=count(usage.get("output_tokens")),
            cached_tokens=count(section(usage, "input_tokens_details").get("cached_tokens")),
            reasoning_tokens=count(section(usage, "output_tokens_details").get("reasoning_tokens")),
            reported=True,
        )
    prompt = count(usage.get("prompt_tokens"))
    completion = count(usage.get("completion_tokens"))
    reasoning = count(section(usage, "completion_tokens_details").get("reasoning_tokens"))
    total = count(usage.get("total_tokens"))
    # OpenAI counts reasoning inside completion_tokens; a family that leaves it out (xAI's
    # reasoning models) still counts it in total_tokens, and every non-prompt token is output.
    output = max(completion, total - prompt)
    # DeepSeek reports cache hits as `prompt_cache_hit_tokens` (prompt_tokens = hit + miss).
    cached = count(section(usage, "prompt_tokens_details").get("cached_tokens")) or count(
        usage.get("prompt_cache_hit_tokens")
    )
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        cached_tokens=min(cached, prompt),
        reasoning_tokens=reasoning,
        reported=True,
    )


def anthropic_usage(usage: dict[str, Any] | None) -> Usage:
    """Anthropic's `input_tokens` excludes cache reads and writes; ours includes them."""
    if not isinstance(usage, dict):
        return Usage()
    cached = count(usage.get("cache_read_input_tokens"))
    written = count(usage.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=count(usage.get("input_tokens")) + cached + written,
        output_tokens=count(usage.get("output_tokens")),
        cached_tokens=cached,
        cache_write_tokens=written,
        reported=True,
    )


def gemini_usage(meta: dict[str, Any] | None) -> Usage:
    """Output includes `thoughtsTokenCount` (billed as output)."""
    if not isinstance(meta, dict):
        return Usage()
    thoughts = count(meta.get("thoughtsTokenCount"))
    prompt = count(meta.get("promptTokenCount")) + count(meta.get("toolUsePromptTokenCount"))
    return Usage(
        # Tool-use prompt tokens (code execution, search results fed back) bill as input.
        input_tokens=prompt,
        output_tokens=count(meta.get("candidatesTokenCount")) + thoughts,
        cached_tokens=min(count(meta.get("cachedContentTokenCount")), prompt),
        reasoning_tokens=thoughts,
        reported=True,
    )


def chat_usage(usage: Usage) -> dict[str, Any]:
    """Usage as an OpenAI chat completion reports it."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def messages_usage(usage: Usage) -> dict[str, int]:
    """Usage as an Anthropic message reports it."""
    return {
        "input_tokens": usage.input_tokens - usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }
