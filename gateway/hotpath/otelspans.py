"""One gateway call as an OTLP Span message (GenAI semantic conventions + `alephant.*`), from
the record `otel.OtelExport.export` queued. Runs on the export thread, never on a request.

Per span only what differs from call to call is encoded (ids, times, request id, tokens, cost,
session); the attributes shared by many calls are encoded once and cached as bytes: the model
group (span name, kind, operation, provider, request and response model) and the owner group
(workspace, gateway key, member, department, agent).
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

from gateway.hotpath.otlp import Attr, field

# Our endpoint -> `gen_ai.operation.name`.
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
# Our provider ids -> `gen_ai.provider.name` well-known values (others pass as they are).
PROVIDERS = {
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
}
_CACHE_MAX = 10_000
_KIND_CLIENT = b"\x30\x03"  # Span.kind = SPAN_KIND_CLIENT
_TIMES = struct.Struct("<BQBQ")  # start_time_unix_nano (7) and end_time_unix_nano (8), fixed64
# Span.flags (16, fixed32): sampled, and whether the parent is remote (the caller's traceparent).
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x101)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x301)
# trace_id (1), span_id (2) [, parent_span_id (4)], flags.
_IDS_LOCAL = b"\x0a\x10%b\x12\x08%b" + _FLAGS_LOCAL.replace(b"%", b"%%")
_IDS_REMOTE = b"\x0a\x10%b\x12\x08%b\x22\x08%b"
_A = {
    name: Attr(name)
    for name in (
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.conversation.id",
        "gen_ai.agent.id",
        "gen_ai.agent.name",
        "gen_ai.usage.cost.amount",
        "gen_ai.usage.cost.currency",
        "error.type",
        "alephant.request_id",
        "alephant.status_code",
        "alephant.attempts",
        "alephant.cost_usd",
        "alephant.cache_hit",
        "alephant.workspace_id",
        "alephant.gateway_key_id",
        "alephant.member_id",
        "alephant.department_id",
        "alephant.refusal_reason",
    )
}
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
# The per-span attributes' encoders, bound once.
_INPUT = _A["gen_ai.usage.input_tokens"].int_
_OUTPUT = _A["gen_ai.usage.output_tokens"].int_
_CACHED = _A["gen_ai.usage.cache_read.input_tokens"].int_
_REASONING = _A["gen_ai.usage.reasoning.output_tokens"].int_
_CACHE_HIT = _A["alephant.cache_hit"].bool_
_CONVERSATION = _A["gen_ai.conversation.id"].str_
_REFUSAL = _A["alephant.refusal_reason"].cached
_ERROR = _A["error.type"].cached
_REQUEST_ID = _A["alephant.request_id"].str_
_STATUS = _A["alephant.status_code"].int_
_ATTEMPTS = _A["alephant.attempts"].int_
_USD = _A["gen_ai.usage.cost.currency"].str_("USD")
_COST_USD = _A["alephant.cost_usd"].str_
_AMOUNT = _A["gen_ai.usage.cost.amount"].double_(0.0)[:-8]  # the KeyValue up to its 8 bytes
_DOUBLE = struct.Struct("<d")


class SpanEncoder:
    """Encodes queued call records (`otel.Record`) as Span messages, with its byte caches."""

    def __init__(self) -> None:
        self._models: dict[tuple, bytes] = {}
        self._owners: dict[tuple, bytes] = {}
        self._costs: dict[Decimal, bytes] = {}
        self._statuses: dict[tuple, bytes] = {}

    def clear(self) -> None:
        """Forget the cached groups (an agent renamed shows up after at most one clear)."""
        self._models.clear()
        self._owners.clear()
        self._costs.clear()

    def span(self, record: tuple, span_id: bytes, trace_random: bytes) -> bytes:
        """`record`: see `otel.OtelExport.export`; `span_id` 8 random bytes, `trace_random` 16
        (a root span's trace id; its last 8 bytes replaced by the sampler's draw if it drew).
        Written for speed (it runs once per sampled call): locals, one join."""
        (end_ns, elapsed, trace, parent, state, endpoint, events, key, who, request_id, status,
         attempts, cost, error_type, reason) = record  # fmt: skip
        if trace is None:
            trace = trace_random
        elif type(trace) is int:
            trace = trace_random[:8] + trace.to_bytes(8, "big")
        if parent is None:
            head = _IDS_LOCAL % (trace, span_id)
        else:
            head = _IDS_REMOTE % (trace, span_id, parent)
            # W3C tracestate is ASCII: anything else is invalid, and dropped (as the SDK does).
            head += _FLAGS_REMOTE + field(3, state) if state and state.isascii() else _FLAGS_REMOTE
        usage = b""
        if events:
            if len(events) == 1:
                e = events[0]
                n_in, n_out = e["input_tokens"], e["output_tokens"]
                n_cached, n_reasoning = e["cached_tokens"], e["reasoning_tokens"]
            else:
                n_in, n_out, n_cached, n_reasoning = (
                    sum(e[name] for e in events) for name in _TOKEN_FIELDS
                )
            usage = b"".join(
                (
                    _INPUT(n_in),  # ints: the providers' usage parser makes them so
                    _OUTPUT(n_out),
                    _CACHED(n_cached),
                    _REASONING(n_reasoning),
                    _CACHE_HIT(bool(events[-1]["cache_hit"])),
                )
            )
        tail = b""
        if who is not None and who.session_id:
            tail = _CONVERSATION(who.session_id)
        if reason:
            tail += _REFUSAL(reason)
        if status >= 400:
            error = error_type or str(status)
            # error.type, and Status{message: error, code: STATUS_CODE_ERROR}
            tail += _ERROR(error) + field(15, field(2, error.encode()) + b"\x18\x02")
        return b"".join(
            (
                head,
                _TIMES.pack(0x39, end_ns - int(elapsed * 1e9), 0x41, end_ns),
                self._model(endpoint, events),
                _REQUEST_ID(request_id),
                self._status(status, attempts),
                self._cost(cost),
                usage,
                self._owner(key, who) if key else b"",
                tail,
            )
        )

    def _model(self, endpoint: str, events: list[dict[str, Any]]) -> bytes:
        """Span name and kind, operation, provider, request and response model."""
        if events:
            first, last = events[0], events[-1]
            cache_key: tuple = (endpoint, first["model"], last["provider"], last["model"])
        else:
            cache_key = (endpoint,)
        encoded = self._models.get(cache_key)
        if encoded is None:
            operation = OPERATIONS.get(endpoint, endpoint or "unknown")
            name = f"{operation} {events[0]['model']}".strip() if events else operation
            encoded = field(5, name.encode()) + _KIND_CLIENT
            encoded += _A["gen_ai.operation.name"].str_(operation)
            if events:
                provider = cache_key[2]
                encoded += _A["gen_ai.provider.name"].str_(PROVIDERS.get(provider, provider))
                encoded += _A["gen_ai.request.model"].str_(cache_key[1])
                encoded += _A["gen_ai.response.model"].str_(cache_key[3])
            if len(self._models) >= _CACHE_MAX:
                self._models.clear()
            self._models[cache_key] = encoded
        return encoded

    def _status(self, status: int, attempts: int) -> bytes:
        encoded = self._statuses.get((status, attempts))
        if encoded is None:
            encoded = _STATUS(status) + _ATTEMPTS(attempts)
            if len(self._statuses) < 1000:
                self._statuses[(status, attempts)] = encoded
        return encoded

    def _cost(self, cost: Decimal) -> bytes:
        """`alephant.cost_usd` (exact decimal string), and the proposed (not yet in the GenAI
        conventions) `gen_ai.usage.cost.amount` / `.currency`. Cached while the cache has room
        (repeated calls cost the same; most costs differ, so no churn once full)."""
        encoded = self._costs.get(cost)
        if encoded is None:
            text = str(cost)
            encoded = _COST_USD(text) + _AMOUNT + _DOUBLE.pack(float(text)) + _USD
            if len(self._costs) < 512:
                self._costs[cost] = encoded
        return encoded

    def _owner(self, key: dict[str, Any], who: Any) -> bytes:
        """Workspace, gateway key, and (with an attribution) member, department, agent."""
        ids: tuple[Any, ...] = (key.get("workspace_id"), key.get("key_id"))
        if who is not None:
            ids += (who.member_id, who.department_id, who.agent_id)
        encoded = self._owners.get(ids)
        if encoded is None:
            encoded = _A["alephant.workspace_id"].int_(int(ids[0]))
            if ids[1] is not None:
                encoded += _A["alephant.gateway_key_id"].int_(int(ids[1]))
            if who is not None:
                encoded += _who(key, who)
            if len(self._owners) >= _CACHE_MAX:
                self._owners.clear()
            self._owners[ids] = encoded
        return encoded


def _who(key: dict[str, Any], who: Any) -> bytes:
    encoded = b""
    if who.agent_id is not None:
        encoded += _A["gen_ai.agent.id"].str_(str(who.agent_id))
        agents = key.get("member_agents") or {}
        name = next((s for s, a in agents.items() if a.get("agent_id") == who.agent_id), "")
        if name:
            encoded += _A["gen_ai.agent.name"].str_(str(name))
    if who.member_id is not None:
        encoded += _A["alephant.member_id"].int_(int(who.member_id))
    if who.department_id is not None:
        encoded += _A["alephant.department_id"].int_(int(who.department_id))
    return encoded
