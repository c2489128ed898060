"""OpenAI's Responses API (/v1/responses), streamed as named events."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

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
)
from devtools.simulator.openai import n_out

routes = web.RouteTableDef()


def _responses_text(body: dict[str, Any]) -> str:
    raw_input = body["input"]
    if isinstance(raw_input, list):
        text = " ".join(
            text_of(item.get("content")) if isinstance(item, dict) else str(item)
            for item in raw_input
        )
    else:
        text = str(raw_input)
    return (text_of(body.get("instructions")) + " " + text).strip()


def _response_object(
    body: dict[str, Any], model: str, reply: str, usage: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the output message item, the whole response object)."""
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
    return item, response


@routes.post("/v1/responses")
async def responses(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    body = await read_json(request)
    if not isinstance(body, dict) or "input" not in body:
        return oai_error(400, "input is required", "invalid_request_error")
    model = str(body.get("model", ""))
    record(sim, request, body, model)
    text = _responses_text(body)
    plan = Plan(request, text, sim)
    failed = await maybe_fail(plan)
    if failed is not None:
        return failed
    n, _finish = n_out(body, plan, "max_output_tokens")
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
    item, response = _response_object(body, model, reply, usage)
    if not body.get("stream"):
        return web.Response(body=orjson.dumps(response), content_type="application/json")
    return await _stream_response(request, response, item, words)


async def _stream_response(
    request: web.Request, response: dict[str, Any], item: dict[str, Any], words: list[str]
) -> web.StreamResponse:
    reply = " ".join(words)
    at = {"item_id": "msg_sim", "output_index": 0, "content_index": 0}  # where each part goes
    resp = sse_response()
    await resp.prepare(request)
    seq = 0

    async def event(name: str, data: dict[str, Any]) -> None:
        nonlocal seq
        payload = {"type": name, "sequence_number": seq, **data}
        seq += 1
        await resp.write(f"event: {name}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n")

    started = {**response, "status": "in_progress", "output": [], "usage": None}
    await event("response.created", {"response": started})
    await event(
        "response.output_item.added",
        {"output_index": 0, "item": {**item, "content": [], "status": "in_progress"}},
    )
    await event(
        "response.content_part.added",
        {**at, "part": {"type": "output_text", "text": "", "annotations": []}},
    )
    for i, word in enumerate(words):
        await event(
            "response.output_text.delta",
            {**at, "delta": word if i == 0 else " " + word, "logprobs": []},
        )
    await event(
        "response.output_text.done",
        {**at, "text": reply, "logprobs": []},
    )
    await event(
        "response.content_part.done",
        {**at, "part": item["content"][0]},
    )
    await event("response.output_item.done", {"output_index": 0, "item": item})
    await event("response.completed", {"response": response})
    await resp.write_eof()
    return resp
