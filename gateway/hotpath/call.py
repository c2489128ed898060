"""One client request as the funnel learns about it, and the usage event of each attempt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway.hotpath.providers.base import Usage
from gateway.hotpath.routing import Attribution, Route


@dataclass
class Call:
    """Everything the funnel learned about one client request."""

    request_id: str
    endpoint: str
    style: str
    started: float  # perf_counter
    created_at: float  # unix time
    key: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)
    who: Attribution | None = None
    fingerprint: str = ""
    stream: bool = False
    estimated_input: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    tokens: int = 0
    cache_ttl: int = 0  # > 0: answers are cached (gateway/hotpath/cache.py) this long
    cache_fingerprint: str = ""
    # For telemetry (gateway/hotpath/telemetry.py), filled where each is known:
    raw: bytes = b""  # the request body (logged only with ALEPHANT_LOG_BODIES=1)
    admit_s: float = 0.0  # the admission round trip
    upstream_s: float = 0.0  # time spent waiting on providers, all attempts
    attempts: int = 0  # provider attempts made
    status: int = 200  # what the client was answered (an error's status)
    error_type: str = ""


def usage_event(
    call: Call,
    attempt_id: str,
    route: Route,
    usage: Usage,
    cost: Decimal,
    *,
    status: int,
    error_type: str = "",
    estimated: bool = False,
    cache_hit: bool = False,
    saved: Decimal | None = None,
) -> dict[str, Any]:
    """One attempt's usage event (fields: `gateway.hotpath.usage.FIELDS`)."""
    who = call.who
    assert who is not None
    return {
        "request_id": attempt_id,
        "workspace_id": call.key["workspace_id"],
        "gateway_key_id": call.key.get("key_id"),
        "member_id": who.member_id,
        "department_id": who.department_id,
        "agent_id": who.agent_id,
        "session_id": who.session_id,
        "session_path": who.session_path,
        "session_name": who.session_name,
        "properties": who.properties,
        "provider": route.provider,
        "provider_credential_id": route.credential.get("id"),
        "model": route.model,
        "endpoint": call.endpoint,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost_usd": str(cost),
        "saved_usd": str(saved) if saved is not None else "0",
        "cache_hit": cache_hit,
        "status_code": status,
        "error_type": error_type,
        "estimated": estimated,
        "stream": call.stream,
        "latency_ms": int((time.perf_counter() - call.started) * 1000),
        "fingerprint": call.fingerprint,
        "created_at": call.created_at,
    }


def add_usage(call: Call, route: Route, usage: Usage) -> Decimal:
    """Price one answered attempt at the called model's price and add it to the call."""
    cost = route.pricing.cost(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    call.cost += cost
    call.tokens += usage.total
    return cost
