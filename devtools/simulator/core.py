"""What every simulated provider shares: the vocabulary, the request plan (faults, latency,
tokens), stats and small response helpers."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

SIM = web.AppKey("sim", "Sim")

VOCAB = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu budget ledger "
    "token gateway model stream cost agent member"
).split()
DEFAULT_OUTPUT_TOKENS = 12
DIRECTIVE = re.compile(r"\[\[sim:([^\]]*)\]\]")


def count_tokens(text: str) -> int:
    """Deterministic stand-in for a tokenizer: one token per 4 characters, at least one."""
    return max(1, (len(text) + 3) // 4)


def reply_words(seed: str, n: int) -> list[str]:
    digest = hashlib.sha256(seed.encode()).digest()
    return [VOCAB[(digest[i % 32] + i) % len(VOCAB)] for i in range(n)]


def text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part.get("text") or part.get("content") or ""))
                if "input" in part:
                    parts.append(orjson.dumps(part["input"]).decode())
            else:
                parts.append(str(part))
        return " ".join(parts)
    if isinstance(content, dict):
        return text_of(content.get("text") or content.get("parts"))
    return str(content)


class Sim:
    def __init__(self, *, latency_ms: int = 0, fail_rate: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.seen = 0
        self.by_path: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        self.fail_counts: Counter[str] = Counter()
        self.last_auth: str | None = None
        self.last_body: Any = None
        self.last_headers: dict[str, str] = {}
        # The admin (billing) APIs' tally and knobs: see `billing.py`.
        self.billed: list[dict[str, Any]] = []
        self.billing_knobs: dict[str, Any] = {}
        self.admin_auths: list[str] = []

    def stats(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_path": dict(self.by_path),
            "by_model": dict(self.by_model),
            "last_auth": self.last_auth,
            "last_body": self.last_body,
            "last_headers": self.last_headers,
            "admin_auths": self.admin_auths,
        }


class Plan:
    """What this request should do: output length, faults, latency."""

    def __init__(self, request: web.Request, last_text: str, sim: Sim) -> None:
        options: dict[str, str] = {}
        for match in DIRECTIVE.finditer(last_text):
            for item in match.group(1).split(","):
                key, _, value = item.partition("=")
                options[key.strip()] = value.strip()
        headers = request.headers
        self.fail = headers.get("x-sim-fail") or options.get("fail")
        if not self.fail and sim.fail_rate > 0:
            # Deterministic: every (1/rate)-th request fails with a 500.
            sim.seen += 1
            if sim.seen % max(1, round(1 / sim.fail_rate)) == 0:
                self.fail = "500"
        times = headers.get("x-sim-fail-times") or options.get("times")
        if self.fail and times:
            key = f"{self.fail}:{times}:{last_text}"
            sim.fail_counts[key] += 1
            if sim.fail_counts[key] > int(times):
                self.fail = None
        self.latency_ms = int(headers.get("x-sim-latency-ms") or options.get("latency") or 0)
        self.latency_ms = self.latency_ms or sim.latency_ms
        tokens = headers.get("x-sim-tokens") or options.get("tokens")
        self.output_tokens = int(tokens) if tokens else DEFAULT_OUTPUT_TOKENS
        self.cached = int(options.get("cached", 0))
        self.reasoning = int(options.get("reasoning", 0))
        self.seed = last_text


def oai_error(status: int, message: str, etype: str) -> web.Response:
    body = {"error": {"message": message, "type": etype, "param": None, "code": None}}
    headers = {"retry-after": "1"} if status == 429 else {}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def maybe_fail(plan: Plan) -> web.StreamResponse | None:
    if plan.latency_ms:
        await asyncio.sleep(plan.latency_ms / 1000)
    fail = plan.fail
    if not fail or fail == "truncate":
        return None
    if fail == "timeout":
        await asyncio.sleep(3600)
    if fail == "malformed":
        return web.Response(
            status=200, body=b'{"id": "broken", "choices": [', content_type="application/json"
        )
    status = int(fail) if fail.isdigit() else 500
    kinds = {429: "rate_limit_error", 400: "invalid_request_error", 401: "authentication_error"}
    return oai_error(
        status, f"simulated upstream error {status}", kinds.get(status, "server_error")
    )


def sse_response() -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = "text/event-stream"
    resp.headers["cache-control"] = "no-cache"
    return resp


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def record(sim: Sim, request: web.Request, body: Any, model: str) -> None:
    sim.total += 1
    sim.by_path[request.path] += 1
    sim.by_model[model] += 1
    sim.last_auth = (
        request.headers.get("authorization")
        or request.headers.get("x-api-key")
        or (request.headers.get("x-goog-api-key") or request.headers.get("api-key"))
    )
    sim.last_headers = {
        k.lower(): v
        for k, v in request.headers.items()
        if k.lower().startswith(("alephant", "x-sim", "anthropic", "openai", "user-agent"))
    }
    sim.last_body = body


def tool_args(tool_params: dict[str, Any] | None, seed: str) -> dict[str, Any]:
    props = (tool_params or {}).get("properties") or {}
    args: dict[str, Any] = {}
    for name, spec in props.items():
        kind = (spec or {}).get("type")
        args[name] = (
            3
            if kind in ("integer", "number")
            else (True if kind == "boolean" else seed[:24] or "sim")
        )
    return args
