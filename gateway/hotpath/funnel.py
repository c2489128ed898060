"""One `/v1` proxy call, step by step: authenticate -> read and check the body -> resolve the
model to a provider credential -> plan retries/fallback -> response cache -> admit (reserve the
worst case on every budget of the chain) -> forward (`forward.py`) or stream (`relay.py`)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from core.pricing import usd_to_nanos
from gateway.hotpath import cache
from gateway.hotpath.accounting import account, release_unsettled, serve_cached
from gateway.hotpath.admission import Admission, AdmitRequest
from gateway.hotpath.auth import authenticate, workspace_of
from gateway.hotpath.call import Call, usage_event
from gateway.hotpath.forward import forward
from gateway.hotpath.http import GatewayError
from gateway.hotpath.providers import adapter_for
from gateway.hotpath.providers.base import Usage
from gateway.hotpath.relay import forward_stream
from gateway.hotpath.requests import RequestInvalid, Validated, validate
from gateway.hotpath.routing import Route, attribution, fingerprint, model_allowed, resolve_route
from gateway.hotpath.runtime import Runtime
from gateway.hotpath.validate import read_json

ROUTES = {
    (b"POST", "/v1/chat/completions"): "chat",
    (b"POST", "/v1/completions"): "completions",
    (b"POST", "/v1/embeddings"): "embeddings",
    (b"POST", "/v1/responses"): "responses",
    (b"POST", "/v1/messages"): "messages",
}


async def proxy(rt: Runtime, call: Call, scope: dict, receive: Any, send: Any) -> None:
    headers = dict(scope["headers"])
    call.key = await authenticate(rt.snapshots, headers, secret=rt.config.key_hash_secret)
    raw, body = await read_json(receive, rt.config.max_body_bytes)
    call.raw = raw
    v = _validated(rt, call, body, raw)
    ref = v.model
    call.workspace = await workspace_of(rt.snapshots, call.key)
    route = _route(call, ref)
    call.who = attribution(call.key, headers)
    call.fingerprint = fingerprint(ref, body)
    call.stream = v.stream
    call.estimated_input = v.input_tokens
    plan = _plan(rt, call, headers, route)
    if not call.stream and await _from_cache(rt, call, headers, body, route, send):
        return
    admission = await _admit(rt, call, v, route, plan)
    try:
        if call.stream:
            await forward_stream(
                rt, call, body, plan, admission, receive, send, v.client_wants_usage
            )
        else:
            await forward(rt, call, body, plan, admission, send)
    except BaseException:
        await release_unsettled(rt.enforcer, rt.usage, call, admission)
        raise


def _validated(rt: Runtime, call: Call, body: dict, raw: bytes) -> Validated:
    """Every field the call is priced, routed or translated on, checked before anything is
    reserved or forwarded: a malformed request is a 400 in the route's format, never a 500."""
    try:
        return validate(
            endpoint=call.endpoint,
            client_format=call.style,  # set once from the path (app.http)
            body=body,
            raw_size=len(raw),
            default_max_output_tokens=rt.config.default_max_output_tokens,
        )
    except RequestInvalid as exc:
        raise GatewayError(
            400, exc.message, param=exc.param or None, code="invalid_request_error"
        ) from None


def _route(call: Call, ref: str) -> Route:
    route = resolve_route(call.workspace, ref)
    if not model_allowed(call.key, ref, route):
        raise GatewayError(
            403,
            f"This key may not use the model `{ref}`.",
            error_type="permission_denied",
            code="model_not_allowed",
        )
    adapter = adapter_for(route.provider)
    if call.endpoint not in adapter.native and call.endpoint not in getattr(
        adapter, "translated", ()
    ):
        raise GatewayError(
            400,
            f"The model `{ref}` ({route.provider}) cannot serve "
            f"/v1/{call.endpoint.replace('chat', 'chat/completions')}.",
            code="unsupported_endpoint",
        )
    return route


def _plan(rt: Runtime, call: Call, headers: dict[bytes, bytes], route: Route) -> list[Route]:
    """The attempts: the route, `retries` more times, then the fallback model if one is named."""
    plan = [route] * (1 + max(0, rt.config.retries))
    fallback = headers.get(b"alephant-fallback-model")
    if fallback:
        fallback_ref = fallback.decode("latin-1").strip()
        alt = resolve_route(call.workspace, fallback_ref)
        if not model_allowed(call.key, fallback_ref, alt):
            raise GatewayError(
                403,
                f"This key may not use the fallback model `{fallback_ref}`.",
                error_type="permission_denied",
                code="model_not_allowed",
            )
        plan.append(alt)
    return plan


async def _from_cache(
    rt: Runtime, call: Call, headers: dict[bytes, bytes], body: dict, route: Route, send: Any
) -> bool:
    """True when a cached answer was served (no admission, no provider call)."""
    assert call.who is not None
    call.cache_ttl = cache.ttl_for(
        call.workspace,
        call.key,
        call.who.agent_id,
        headers.get(cache.HEADER),
        default_ttl_s=rt.config.cache_ttl_s,
    )
    if not call.cache_ttl:
        return False
    call.cache_fingerprint = cache.request_fingerprint(call.endpoint, body)
    entry = await cache.lookup(rt.redis, call.key["workspace_id"], call.cache_fingerprint)
    if entry is None:
        return False
    await serve_cached(rt.usage, call, route, entry, send)
    return True


async def _admit(
    rt: Runtime, call: Call, v: Validated, route: Route, plan: list[Route]
) -> Admission:
    """Reserve the worst case of every attempt's model on the chain, or refuse (402/429/503):
    input estimate + output limit x every choice (n, best_of, prompts)."""
    max_out = v.max_output_tokens
    worst = max(
        r.pricing.worst_case(input_tokens=call.estimated_input, max_output_tokens=max_out)
        for r in {id(r): r for r in plan}.values()
    )
    who = call.who
    assert who is not None
    request = AdmitRequest(
        request_id=call.request_id,
        workspace_id=call.key["workspace_id"],
        key_id=call.key.get("key_id") or 0,
        member_id=who.member_id,
        department_id=who.department_id,
        agent_id=who.agent_id,
        agent_department_id=who.agent_department_id,
        provider=route.provider,
        model=route.model,
        estimated_input_tokens=call.estimated_input,
        max_output_tokens=max_out,
        reserve_nanos=usd_to_nanos(worst),
        fingerprint=call.fingerprint,
        session_id=who.session_id or None,
        properties=who.properties or None,
    )
    started = time.perf_counter()
    admission = await rt.enforcer.admit(request, call.workspace, call.key)
    call.admit_s = time.perf_counter() - started
    if admission.allowed:
        return admission
    call.events.append(
        usage_event(
            call,
            call.request_id,
            route,
            Usage(),
            Decimal(0),
            status=admission.status,
            error_type=admission.error_type or "refused",
        )
    )
    await account(rt.enforcer, rt.usage, call, admission, success=False)
    raise GatewayError(
        admission.status,
        admission.message or "Request refused.",
        error_type=admission.error_type,
        code=admission.error_type,
        headers=admission.headers,
        details=admission.details,
    )
