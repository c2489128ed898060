"""Anthropic: /v1/messages."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from devtools.simulator import billing
from devtools.simulator.core import (
    SIM,
    Plan,
    count_tokens,
    maybe_fail,
    read_json,
    record,
    reply_words,
    sse_response,
    text_of,
    tool_args,
)
from devtools.simulator.openai import (
    n_out,
)

routes = web.RouteTableDef()


def _anthropic_error(status: int, message: str) -> web.Response:
    kinds = {429: "rate_limit_error", 400: "invalid_request_error", 529: "overloaded_error"}
    body = {
        "type": "error",
        "error": {"type": kinds.get(status, "api_error"), "message": message},
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _messages_input(body: dict[str, Any]) -> tuple[str, str, int]:
    """(all the text, the last message's text, input tokens) of a messages request."""
    msgs = body["messages"]
    system_text = text_of(body.get("system"))
    all_text = " ".join(
        [system_text] + [text_of(m.get("content")) for m in msgs if isinstance(m, dict)]
    ).strip()
    last = text_of(msgs[-1].get("content")) if msgs and isinstance(msgs[-1], dict) else ""
    prompt = (count_tokens(system_text) if system_text else 0) + sum(
        4 + count_tokens(text_of(m.get("content"))) for m in msgs if isinstance(m, dict)
    )
    if body.get("tools"):
        prompt += count_tokens(orjson.dumps(body["tools"]).decode())
    return all_text, last, prompt


def _calls_a_tool(body: dict[str, Any]) -> bool:
    """A tool is offered, allowed, and the last turn is not already a tool's result."""
    msgs = body["messages"]
    last_is_tool_result = (
        bool(msgs)
        and isinstance(msgs[-1].get("content"), list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in msgs[-1]["content"])
    )
    return bool(
        body.get("tools")
        and not last_is_tool_result
        and (body.get("tool_choice") or {}).get("type") != "none"
    )


@routes.post("/v1/messages")
async def messages(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    body = await read_json(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("messages"), list)
        or "max_tokens" not in body
    ):
        return _anthropic_error(400, "messages and max_tokens are required")
    model = str(body.get("model", ""))
    record(sim, request, body, model)
    all_text, last, prompt = _messages_input(body)
    plan = Plan(request, last, sim)
    failed = await maybe_fail(plan)
    if failed is not None:
        status = failed.status
        if status == 200:
            return failed
        return _anthropic_error(status, f"simulated upstream error {status}")
    n, finish = n_out(body, plan, "max_tokens")
    stop = "max_tokens" if finish == "length" else "end_turn"
    words = reply_words(all_text, n)
    tools = body.get("tools") or []
    use_tool = _calls_a_tool(body)
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
        args = tool_args(tool.get("input_schema"), last)
        content: list[dict[str, Any]] = [
            {"type": "tool_use", "id": "toolu_sim1", "name": tool["name"], "input": args}
        ]
        n = count_tokens(orjson.dumps(args).decode()) + 3
        usage["output_tokens"] = n
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": " ".join(words)}]
    billing.bill_request(sim, request, provider="anthropic", model=model, usage=usage)
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
    return await _stream_message(request, msg, words, plan)


async def _stream_message(
    request: web.Request, msg: dict[str, Any], words: list[str], plan: Plan
) -> web.StreamResponse:
    content, usage, stop = msg["content"], msg["usage"], msg["stop_reason"]
    use_tool, n = content[0]["type"] == "tool_use", usage["output_tokens"]
    resp = sse_response()
    await resp.prepare(request)

    async def event(name: str, data: dict[str, Any]) -> None:
        await resp.write(
            f"event: {name}\n".encode() + b"data: " + orjson.dumps({"type": name, **data}) + b"\n\n"
        )

    start_usage = {**usage, "output_tokens": 1}
    await event(
        "message_start",
        {"message": {**msg, "content": [], "stop_reason": None, "usage": start_usage}},
    )
    if use_tool:
        block = content[0]
        await event("content_block_start", {"index": 0, "content_block": {**block, "input": {}}})
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
