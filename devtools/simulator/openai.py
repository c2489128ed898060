"""OpenAI: chat completions (also Azure's deployment path), completions, embeddings, responses."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from devtools.simulator import billing
from devtools.simulator.core import (
    SIM,
    Plan,
    count_tokens,
    maybe_fail,
    oai_error,
    read_json,
    record,
    reply_words,
    sse_response,
    text_of,
    tool_args,
)

routes = web.RouteTableDef()


def chat_input(body: dict[str, Any]) -> tuple[str, str, int]:
    messages = body.get("messages") or []
    all_text = " ".join(text_of(m.get("content")) for m in messages if isinstance(m, dict))
    last = (
        text_of(messages[-1].get("content")) if messages and isinstance(messages[-1], dict) else ""
    )
    prompt = sum(
        4 + count_tokens(text_of(m.get("content"))) for m in messages if isinstance(m, dict)
    )
    if body.get("tools"):
        prompt += count_tokens(orjson.dumps(body["tools"]).decode())
    return all_text, last, prompt


def oai_usage(prompt: int, completion: int, plan: Plan) -> dict[str, Any]:
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


def wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
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


def n_out(body: dict[str, Any], plan: Plan, *keys: str) -> tuple[int, str]:
    limit = None
    for key in keys:
        if body.get(key) is not None:
            limit = int(body[key])
            break
    n = plan.output_tokens
    if limit is not None and n > limit:
        return limit, "length"
    return n, "stop"


@dataclass
class ChatReply:
    base: dict[str, Any]  # the fields every chunk repeats
    message: dict[str, Any]
    words: list[str]
    n: int
    finish: str
    usage: dict[str, Any]


async def _emit_tool_call(emit: Callable[..., Awaitable[None]], call: dict[str, Any]) -> None:
    """The call's name first, then its arguments 8 characters at a time."""
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
        await emit({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]})


async def _stream_chat(
    request: web.Request, body: dict[str, Any], reply: ChatReply, plan: Plan
) -> web.StreamResponse:
    base, message, words, n = reply.base, reply.message, reply.words, reply.n
    resp = sse_response()
    await resp.prepare(request)
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
    if "tool_calls" in message:
        await _emit_tool_call(emit, message["tool_calls"][0])
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
    await emit({}, reply.finish)
    if include_usage:
        await resp.write(
            b"data: " + orjson.dumps({**base, "choices": [], "usage": reply.usage}) + b"\n\n"
        )
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def _chat_message(
    body: dict[str, Any],
    words: list[str],
    last: str,
    tool: dict[str, Any] | None,
    n: int,
    finish: str,
) -> tuple[dict[str, Any], int, str]:
    """(assistant message, output tokens, finish reason): text, a JSON object or a tool call."""
    message: dict[str, Any] = {"role": "assistant", "content": " ".join(words), "refusal": None}
    if tool:
        args = orjson.dumps(tool_args(tool["parameters"], last)).decode()
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
    return message, n, finish


async def chat(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return oai_error(400, "messages is required", "invalid_request_error")
    model = request.match_info.get("deployment") or str(body.get("model", ""))
    record(sim, request, body, model)
    all_text, last, prompt = chat_input(body)
    plan = Plan(request, last, sim)
    failed = await maybe_fail(plan)
    if failed is not None:
        return failed
    n, finish = n_out(body, plan, "max_completion_tokens", "max_tokens")
    words = reply_words(all_text, n)
    tool = wants_tool(body)
    rid = "chatcmpl-sim" + hashlib.sha256(all_text.encode()).hexdigest()[:20]
    created = int(time.time())
    message, n, finish = _chat_message(body, words, last, tool, n, finish)
    usage = oai_usage(prompt, n, plan)
    billing.bill_request(sim, request, provider="openai", model=model, usage=usage)
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
    base = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_sim",
    }
    reply = ChatReply(base, message, words, n, finish, usage)
    return await _stream_chat(request, body, reply, plan)


routes.post("/v1/chat/completions")(chat)
routes.post("/openai/deployments/{deployment}/chat/completions")(chat)


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    body = await read_json(request)
    if not isinstance(body, dict) or "prompt" not in body:
        return oai_error(400, "prompt is required", "invalid_request_error")
    model = str(body.get("model", ""))
    record(sim, request, body, model)
    prompt_text = text_of(body.get("prompt"))
    plan = Plan(request, prompt_text, sim)
    failed = await maybe_fail(plan)
    if failed is not None:
        return failed
    n, finish = n_out(body, plan, "max_tokens")
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
    resp = sse_response()
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
    sim = request.app[SIM]
    body = await read_json(request)
    if not isinstance(body, dict) or "input" not in body:
        return oai_error(400, "input is required", "invalid_request_error")
    model = str(body.get("model", ""))
    record(sim, request, body, model)
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    plan = Plan(request, text_of(inputs[-1] if inputs else ""), sim)
    failed = await maybe_fail(plan)
    if failed is not None:
        return failed
    dims = int(body.get("dimensions") or 8)
    data: list[dict[str, Any]] = []
    total = 0
    for i, item in enumerate(inputs):
        text = text_of(item)
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
