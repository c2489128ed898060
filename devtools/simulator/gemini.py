"""Gemini: generateContent and streamGenerateContent."""

from __future__ import annotations

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
    tool_args,
)
from devtools.simulator.openai import (
    n_out,
)

routes = web.RouteTableDef()


def _parts_text(parts: Any) -> str:
    out = []
    for part in parts or []:
        if "text" in part:
            out.append(part["text"])
        elif "functionCall" in part or "functionResponse" in part:
            out.append(orjson.dumps(part).decode())
    return " ".join(out)


def _candidate(parts: list[dict[str, Any]], reason: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if reason is not None:
        candidate["finishReason"] = reason
    candidate["index"] = 0
    return candidate


@routes.post(r"/v1beta/models/{model}:{method}")
async def gemini(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        return oai_error(400, "contents is required", "INVALID_ARGUMENT")
    model, method = request.match_info["model"], request.match_info["method"]
    record(sim, request, body, model)
    contents = body["contents"]
    system_text = _parts_text((body.get("systemInstruction") or {}).get("parts"))
    texts = [_parts_text(c.get("parts")) for c in contents]
    all_text = " ".join([system_text, *texts]).strip()
    prompt = (count_tokens(system_text) if system_text else 0) + sum(
        4 + count_tokens(t) for t in texts
    )
    plan = Plan(request, texts[-1] if texts else "", sim)
    failed = await maybe_fail(plan)
    if failed is not None:
        return failed
    config = body.get("generationConfig") or {}
    n, finish = n_out(config, plan, "maxOutputTokens")
    words = reply_words(all_text, n)
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    last_is_response = bool(contents) and any(
        "functionResponse" in p for p in contents[-1].get("parts") or []
    )
    if declarations and not last_is_response:
        decl = declarations[0]
        args = tool_args(decl.get("parameters"), texts[-1] if texts else "")
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
            "candidates": [_candidate(parts, reason)],
            "usageMetadata": usage,
            "modelVersion": model,
        }
        return web.Response(body=orjson.dumps(out), content_type="application/json")
    return await _stream(request, model, parts, words, reason, usage)


async def _stream(
    request: web.Request,
    model: str,
    parts: list[dict[str, Any]],
    words: list[str],
    reason: str,
    usage: dict[str, Any],
) -> web.StreamResponse:
    """Text word by word, then a last chunk with the finish reason and usage (a function
    call comes whole in that last chunk)."""
    resp = sse_response()
    await resp.prepare(request)
    if "text" in parts[0]:
        for i, word in enumerate(words):
            text = [{"text": word if i == 0 else " " + word}]
            chunk = {"candidates": [_candidate(text)], "modelVersion": model}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
        final_parts = [{"text": ""}]
    else:
        final_parts = parts
    final = {
        "candidates": [_candidate(final_parts, reason)],
        "usageMetadata": usage,
        "modelVersion": model,
    }
    await resp.write(b"data: " + orjson.dumps(final) + b"\r\n\r\n")
    await resp.write_eof()
    return resp
