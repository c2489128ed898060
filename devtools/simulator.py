"""Upstream simulator: a real HTTP server that speaks like OpenAI, Anthropic and Gemini.

    python -m devtools.simulator --port 9100 [--latency-ms 0] [--fail-rate 0]

Used by tests, the demo (`make run`) and `make bench`. Replies are deterministic: the text is
chosen from a fixed vocabulary by a hash of the input, one word = one output token, and the
input token count is derived from the input (`count_tokens`).

Faults are injected per request, either by headers (when calling the simulator directly) or by
directives inside the last message's text (so they survive a proxy that drops unknown headers
and a translation to another provider's format):

    x-sim-fail / [[sim:fail=500]]     429 | 500 | 503 | 400 | timeout | malformed | truncate
    x-sim-fail-times / [[sim:times=1]] fail only the first N requests carrying that directive
    x-sim-latency-ms / [[sim:latency=50]]   delay before answering (and between stream chunks)
    x-sim-tokens / [[sim:tokens=40]]   number of output tokens (default 12, capped by max_tokens)
    [[sim:cached=100]]  cached input tokens reported;  [[sim:reasoning=10]] reasoning tokens

`GET /_sim/stats` returns request counts (total, per path, per model) and the last request's
auth header and body; `POST /_sim/reset` zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import time
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

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


def _text_of(content: Any) -> str:
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
        return _text_of(content.get("text") or content.get("parts"))
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

    def stats(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_path": dict(self.by_path),
            "by_model": dict(self.by_model),
            "last_auth": self.last_auth,
            "last_body": self.last_body,
            "last_headers": self.last_headers,
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


def _oai_error(status: int, message: str, etype: str) -> web.Response:
    body = {"error": {"message": message, "type": etype, "param": None, "code": None}}
    headers = {"retry-after": "1"} if status == 429 else {}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def _maybe_fail(plan: Plan) -> web.StreamResponse | None:
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
    return _oai_error(
        status, f"simulated upstream error {status}", kinds.get(status, "server_error")
    )


def _sse_response() -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = "text/event-stream"
    resp.headers["cache-control"] = "no-cache"
    return resp


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _record(sim: Sim, request: web.Request, body: Any, model: str) -> None:
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


def _tool_args(tool_params: dict[str, Any] | None, seed: str) -> dict[str, Any]:
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


# --- OpenAI ---------------------------------------------------------------------------------


def _chat_input(body: dict[str, Any]) -> tuple[str, str, int]:
    messages = body.get("messages") or []
    all_text = " ".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
    last = (
        _text_of(messages[-1].get("content")) if messages and isinstance(messages[-1], dict) else ""
    )
    prompt = sum(
        4 + count_tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)
    )
    if body.get("tools"):
        prompt += count_tokens(orjson.dumps(body["tools"]).decode())
    return all_text, last, prompt


def _oai_usage(prompt: int, completion: int, plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(plan.cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": min(plan.reasoning, completion),
            "audio_tokens": 0,
        },
    }


def _wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    if not tools or body.get("tool_choice") == "none":
        return None
    messages = body.get("messages") or []
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
        return None
    tool = tools[0]
    fn = tool.get("function", tool)
    return {
        "name": fn.get("name", "tool"),
        "parameters": fn.get("parameters") or fn.get("input_schema"),
    }


def _n_out(body: dict[str, Any], plan: Plan, *keys: str) -> tuple[int, str]:
    limit = None
    for key in keys:
        if body.get(key) is not None:
            limit = int(body[key])
            break
    n = plan.output_tokens
    if limit is not None and n > limit:
        return limit, "length"
    return n, "stop"


def make_app(sim: Sim) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    routes = web.RouteTableDef()

    @routes.get("/_sim/stats")
    async def stats(_request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(sim.stats()), content_type="application/json")

    @routes.post("/_sim/reset")
    async def reset(_request: web.Request) -> web.Response:
        sim.reset()
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    @routes.get("/v1/models")
    async def models(_request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "simulator"}
            for m in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
        )

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _oai_error(400, "messages is required", "invalid_request_error")
        model = request.match_info.get("deployment") or str(body.get("model", ""))
        _record(sim, request, body, model)
        all_text, last, prompt = _chat_input(body)
        plan = Plan(request, last, sim)
        failed = await _maybe_fail(plan)
        if failed is not None:
            return failed
        n, finish = _n_out(body, plan, "max_completion_tokens", "max_tokens")
        words = reply_words(all_text, n)
        tool = _wants_tool(body)
        rid = "chatcmpl-sim" + hashlib.sha256(all_text.encode()).hexdigest()[:20]
        created = int(time.time())
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(words), "refusal": None}
        if tool:
            args = orjson.dumps(_tool_args(tool["parameters"], last)).decode()
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_sim1",
                        "type": "function",
                        "function": {"name": tool["name"], "arguments": args},
                    }
                ],
            }
            n, finish = count_tokens(args) + 3, "tool_calls"
        elif (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            message["content"] = orjson.dumps({"reply": " ".join(words)}).decode()
        usage = _oai_usage(prompt, n, plan)
        if not body.get("stream"):
            out = {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": usage,
                "system_fingerprint": "fp_sim",
            }
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        resp = _sse_response()
        await resp.prepare(request)
        base = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_sim",
        }
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def emit(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            chunk = {
                **base,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            if include_usage:
                chunk["usage"] = None
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        await emit({"role": "assistant", "content": ""})
        if tool:
            call = message["tool_calls"][0]
            await emit(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            args = call["function"]["arguments"]
            for i in range(0, len(args), 8):
                await emit(
                    {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]}
                )
        else:
            for i, word in enumerate(words):
                if plan.fail == "truncate" and i >= max(1, len(words) // 2):
                    # Drop the connection mid-stream: no finish chunk, no usage, no [DONE].
                    if request.transport is not None:
                        request.transport.close()
                    return resp
                await emit({"content": word if i == 0 else " " + word})
                if plan.latency_ms:
                    await asyncio.sleep(plan.latency_ms / 1000 / max(1, n))
        await emit({}, finish)
        if include_usage:
            await resp.write(
                b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    routes.post("/v1/chat/completions")(chat)
    routes.post("/openai/deployments/{deployment}/chat/completions")(chat)

    @routes.post("/v1/completions")
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if not isinstance(body, dict) or "prompt" not in body:
            return _oai_error(400, "prompt is required", "invalid_request_error")
        model = str(body.get("model", ""))
        _record(sim, request, body, model)
        prompt_text = _text_of(body.get("prompt"))
        plan = Plan(request, prompt_text, sim)
        failed = await _maybe_fail(plan)
        if failed is not None:
            return failed
        n, finish = _n_out(body, plan, "max_tokens")
        words = reply_words(prompt_text, n)
        prompt = count_tokens(prompt_text)
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        base = {
            "id": "cmpl-sim",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        if not body.get("stream"):
            out = {
                **base,
                "choices": [
                    {"text": " ".join(words), "index": 0, "logprobs": None, "finish_reason": finish}
                ],
                "usage": usage,
            }
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        resp = _sse_response()
        await resp.prepare(request)
        for i, word in enumerate(words):
            chunk = {
                **base,
                "choices": [
                    {
                        "text": word if i == 0 else " " + word,
                        "index": 0,
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        last_chunk = {
            **base,
            "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": finish}],
        }
        await resp.write(b"data: " + orjson.dumps(last_chunk) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(
                b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    @routes.post("/v1/embeddings")
    async def embeddings(request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if not isinstance(body, dict) or "input" not in body:
            return _oai_error(400, "input is required", "invalid_request_error")
        model = str(body.get("model", ""))
        _record(sim, request, body, model)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        plan = Plan(request, _text_of(inputs[-1] if inputs else ""), sim)
        failed = await _maybe_fail(plan)
        if failed is not None:
            return failed
        dims = int(body.get("dimensions") or 8)
        data: list[dict[str, Any]] = []
        total = 0
        for i, item in enumerate(inputs):
            text = _text_of(item)
            total += count_tokens(text)
            digest = hashlib.sha256(text.encode()).digest()
            vector = [round((digest[j % 32] - 128) / 128, 6) for j in range(dims)]
            data.append({"object": "embedding", "index": i, "embedding": vector})
        if body.get("encoding_format") == "base64":
            import base64
            import struct

            for row in data:
                row["embedding"] = base64.b64encode(
                    struct.pack(f"<{dims}f", *row["embedding"])
                ).decode()
        out = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    @routes.post("/v1/responses")
    async def responses(request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if not isinstance(body, dict) or "input" not in body:
            return _oai_error(400, "input is required", "invalid_request_error")
        model = str(body.get("model", ""))
        _record(sim, request, body, model)
        raw_input = body["input"]
        if isinstance(raw_input, list):
            text = " ".join(
                _text_of(item.get("content")) if isinstance(item, dict) else str(item)
                for item in raw_input
            )
        else:
            text = str(raw_input)
        text = (_text_of(body.get("instructions")) + " " + text).strip()
        plan = Plan(request, text, sim)
        failed = await _maybe_fail(plan)
        if failed is not None:
            return failed
        n, _finish = _n_out(body, plan, "max_output_tokens")
        words = reply_words(text, n)
        prompt = count_tokens(text)
        reply = " ".join(words)
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": min(plan.cached, prompt)},
            "output_tokens": n,
            "output_tokens_details": {"reasoning_tokens": min(plan.reasoning, n)},
            "total_tokens": prompt + n,
        }
        item = {
            "id": "msg_sim",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply, "annotations": []}],
        }
        response = {
            "id": "resp_sim",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [item],
            "usage": usage,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
        }
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(response), content_type="application/json")
        resp = _sse_response()
        await resp.prepare(request)
        seq = 0

        async def event(name: str, data: dict[str, Any]) -> None:
            nonlocal seq
            payload = {"type": name, "sequence_number": seq, **data}
            seq += 1
            await resp.write(
                f"event: {name}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"
            )

        started = {**response, "status": "in_progress", "output": [], "usage": None}
        await event("response.created", {"response": started})
        await event(
            "response.output_item.added",
            {"output_index": 0, "item": {**item, "content": [], "status": "in_progress"}},
        )
        await event(
            "response.content_part.added",
            {
                "item_id": "msg_sim",
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            },
        )
        for i, word in enumerate(words):
            await event(
                "response.output_text.delta",
                {
                    "item_id": "msg_sim",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": word if i == 0 else " " + word,
                    "logprobs": [],
                },
            )
        await event(
            "response.output_text.done",
            {
                "item_id": "msg_sim",
                "output_index": 0,
                "content_index": 0,
                "text": reply,
                "logprobs": [],
            },
        )
        await event(
            "response.content_part.done",
            {
                "item_id": "msg_sim",
                "output_index": 0,
                "content_index": 0,
                "part": item["content"][0],
            },
        )
        await event("response.output_item.done", {"output_index": 0, "item": item})
        await event("response.completed", {"response": response})
        await resp.write_eof()
        return resp

    # --- Anthropic --------------------------------------------------------------------------

    def _anthropic_error(status: int, message: str) -> web.Response:
        kinds = {429: "rate_limit_error", 400: "invalid_request_error", 529: "overloaded_error"}
        body = {
            "type": "error",
            "error": {"type": kinds.get(status, "api_error"), "message": message},
        }
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    @routes.post("/v1/messages")
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("messages"), list)
            or "max_tokens" not in body
        ):
            return _anthropic_error(400, "messages and max_tokens are required")
        model = str(body.get("model", ""))
        _record(sim, request, body, model)
        msgs = body["messages"]
        system_text = _text_of(body.get("system"))
        all_text = " ".join(
            [system_text] + [_text_of(m.get("content")) for m in msgs if isinstance(m, dict)]
        ).strip()
        last = _text_of(msgs[-1].get("content")) if msgs and isinstance(msgs[-1], dict) else ""
        prompt = (count_tokens(system_text) if system_text else 0) + sum(
            4 + count_tokens(_text_of(m.get("content"))) for m in msgs if isinstance(m, dict)
        )
        if body.get("tools"):
            prompt += count_tokens(orjson.dumps(body["tools"]).decode())
        plan = Plan(request, last, sim)
        failed = await _maybe_fail(plan)
        if failed is not None:
            status = failed.status
            if status == 200:
                return failed
            return _anthropic_error(status, f"simulated upstream error {status}")
        n, finish = _n_out(body, plan, "max_tokens")
        stop = "max_tokens" if finish == "length" else "end_turn"
        words = reply_words(all_text, n)
        tools = body.get("tools") or []
        last_is_tool_result = (
            bool(msgs)
            and isinstance(msgs[-1].get("content"), list)
            and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in msgs[-1]["content"]
            )
        )
        use_tool = (
            tools
            and not last_is_tool_result
            and (body.get("tool_choice") or {}).get("type") != "none"
        )
        cached = min(plan.cached, prompt)
        # Anthropic's input_tokens excludes cache reads.
        usage = {
            "input_tokens": prompt - cached,
            "output_tokens": n,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0,
        }
        if use_tool:
            tool = tools[0]
            args = _tool_args(tool.get("input_schema"), last)
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": "toolu_sim1", "name": tool["name"], "input": args}
            ]
            n = count_tokens(orjson.dumps(args).decode()) + 3
            usage["output_tokens"] = n
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": " ".join(words)}]
        msg = {
            "id": "msg_sim" + hashlib.sha256(all_text.encode()).hexdigest()[:16],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(msg), content_type="application/json")
        resp = _sse_response()
        await resp.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await resp.write(
                f"event: {name}\n".encode()
                + b"data: "
                + orjson.dumps({"type": name, **data})
                + b"\n\n"
            )

        start_usage = {**usage, "output_tokens": 1}
        await event(
            "message_start",
            {"message": {**msg, "content": [], "stop_reason": None, "usage": start_usage}},
        )
        if use_tool:
            block = content[0]
            await event(
                "content_block_start", {"index": 0, "content_block": {**block, "input": {}}}
            )
            raw = orjson.dumps(block["input"]).decode()
            for i in range(0, len(raw), 8):
                await event(
                    "content_block_delta",
                    {
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": raw[i : i + 8]},
                    },
                )
        else:
            await event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            await event("ping", {})
            for i, word in enumerate(words):
                if plan.fail == "truncate" and i >= max(1, len(words) // 2):
                    if request.transport is not None:
                        request.transport.close()
                    return resp
                await event(
                    "content_block_delta",
                    {
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word if i == 0 else " " + word},
                    },
                )
        await event("content_block_stop", {"index": 0})
        await event(
            "message_delta",
            {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": n}},
        )
        await event("message_stop", {})
        await resp.write_eof()
        return resp

    # --- Gemini -----------------------------------------------------------------------------

    @routes.post(r"/v1beta/models/{model}:{method}")
    async def gemini(request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            return _oai_error(400, "contents is required", "INVALID_ARGUMENT")
        model, method = request.match_info["model"], request.match_info["method"]
        _record(sim, request, body, model)
        contents = body["contents"]

        def parts_text(parts: Any) -> str:
            out = []
            for part in parts or []:
                if "text" in part:
                    out.append(part["text"])
                elif "functionCall" in part or "functionResponse" in part:
                    out.append(orjson.dumps(part).decode())
            return " ".join(out)

        system_text = parts_text((body.get("systemInstruction") or {}).get("parts"))
        texts = [parts_text(c.get("parts")) for c in contents]
        all_text = " ".join([system_text, *texts]).strip()
        prompt = (count_tokens(system_text) if system_text else 0) + sum(
            4 + count_tokens(t) for t in texts
        )
        plan = Plan(request, texts[-1] if texts else "", sim)
        failed = await _maybe_fail(plan)
        if failed is not None:
            return failed
        config = body.get("generationConfig") or {}
        n, finish = _n_out(config, plan, "maxOutputTokens")
        words = reply_words(all_text, n)
        declarations = [
            d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []
        ]
        last_is_response = bool(contents) and any(
            "functionResponse" in p for p in contents[-1].get("parts") or []
        )
        if declarations and not last_is_response:
            decl = declarations[0]
            args = _tool_args(decl.get("parameters"), texts[-1] if texts else "")
            parts: list[dict[str, Any]] = [{"functionCall": {"name": decl["name"], "args": args}}]
            n = count_tokens(orjson.dumps(args).decode()) + 3
            finish = "stop"
        else:
            parts = [{"text": " ".join(words)}]
        reason = "MAX_TOKENS" if finish == "length" else "STOP"
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": n,
            "totalTokenCount": prompt + n,
        }
        if plan.cached:
            usage["cachedContentTokenCount"] = min(plan.cached, prompt)
        if plan.reasoning:
            usage["thoughtsTokenCount"] = plan.reasoning
        if method == "generateContent":
            out = {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": parts},
                        "finishReason": reason,
                        "index": 0,
                    }
                ],
                "usageMetadata": usage,
                "modelVersion": model,
            }
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        resp = _sse_response()
        await resp.prepare(request)
        if "text" in parts[0]:
            for i, word in enumerate(words):
                chunk = {
                    "candidates": [
                        {
                            "content": {
                                "role": "model",
                                "parts": [{"text": word if i == 0 else " " + word}],
                            },
                            "index": 0,
                        }
                    ],
                    "modelVersion": model,
                }
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
            final_parts = [{"text": ""}]
        else:
            final_parts = parts
        final = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": final_parts},
                    "finishReason": reason,
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model,
        }
        await resp.write(b"data: " + orjson.dumps(final) + b"\r\n\r\n")
        await resp.write_eof()
        return resp

    app.add_routes(routes)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Alephant upstream simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    sim = Sim(latency_ms=args.latency_ms, fail_rate=args.fail_rate)
    # Stop within a second on SIGTERM: a `timeout` fault holds its handler for an hour, and
    # aiohttp would otherwise wait 60 s for it (every test teardown and `make run` Ctrl-C).
    web.run_app(
        make_app(sim),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=0.5,
    )


if __name__ == "__main__":
    main()
