"""A plain (non-streamed) call: send it upstream, retry or fall back on a retryable failure,
price what the provider reported, settle, answer, and fill the response cache on a miss."""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.http1 import EgressBlocked, InvalidURL, UpstreamError
from core.money import usd_exact
from gateway.hotpath import cache
from gateway.hotpath.accounting import account, attempt_failed, give_up, transport_error
from gateway.hotpath.admission import Admission
from gateway.hotpath.call import Call, add_usage, usage_event
from gateway.hotpath.http import GatewayError, header_list, send_bytes
from gateway.hotpath.providers import adapter_for
from gateway.hotpath.providers.base import (
    Credential,
    ProviderError,
    Reply,
    UnsupportedRoute,
    UpstreamRequest,
    error_from_status,
    provider_message,
)
from gateway.hotpath.providers.encoding import decode_body
from gateway.hotpath.routing import Route
from gateway.hotpath.runtime import Runtime


def attempt_id(call: Call, index: int) -> str:
    return call.request_id if index == 0 else f"{call.request_id}-{index}"


def build_upstream(
    adapter: Any, call: Call, body: dict, route: Route, cred: Credential, stream: bool
) -> UpstreamRequest:
    """The upstream's request, made from the parsed, validated body and never from the client's
    bytes: a key given twice (`model`, `max_tokens`, even through a `\\u` escape) is read
    last-wins here, and a server that kept the first value would run what nobody priced."""
    try:
        return adapter.build(call.endpoint, body, route.model, cred, stream)
    except UnsupportedRoute as exc:
        raise GatewayError(400, str(exc), code="unsupported_endpoint") from None


def connect_error(exc: BaseException, cred: Credential) -> ProviderError:
    """A failed connection; one the egress policy refused says so (and is not retried)."""
    if isinstance(exc, EgressBlocked):
        return ProviderError(
            502,
            f"The provider address for `{cred.name}` is not an allowed destination "
            "(private or reserved; see ALEPHANT_EGRESS_ALLOW).",
            error_type="upstream_forbidden",
        )
    if isinstance(exc, InvalidURL):  # e.g. `http://127.1`: IPv4 must be dotted decimal
        return ProviderError(
            502,
            f"The provider base URL of `{cred.name}` is not a valid URL.",
            error_type="upstream_invalid_url",
        )
    return transport_error(exc, cred)


def status_error(status: int, data: bytes, retry_after: str | None) -> ProviderError:
    """An upstream answer that is not a success. A redirect is never followed: it could point
    anywhere, with the workspace's key in the request."""
    if 300 <= status < 400:
        return ProviderError(
            502,
            f"The provider answered with a redirect (HTTP {status}), which is not followed.",
            error_type="upstream_redirect",
        )
    return error_from_status(status, provider_message(data), retry_after)


async def forward(
    rt: Runtime,
    call: Call,
    body: dict,
    plan: list[Route],
    admission: Admission,
    send: Any,
) -> None:
    last: ProviderError | None = None
    for index, route in enumerate(plan):
        adapter = adapter_for(route.provider)
        cred = rt.credentials.get(call.key["workspace_id"], route.credential)
        upstream = build_upstream(adapter, call, body, route, cred, False)
        started = time.perf_counter()
        outcome = await _exchange(rt, call, adapter, upstream, route, cred)
        call.upstream_s += time.perf_counter() - started
        call.attempts += 1
        if isinstance(outcome, Reply):
            await _answer(rt, call, route, attempt_id(call, index), admission, outcome, send)
            return
        last = outcome
        if not await attempt_failed(call, plan, index, route, last, attempt_id(call, index), cred):
            break
    await give_up(rt.enforcer, rt.usage, call, admission, last)


async def _exchange(
    rt: Runtime, call: Call, adapter: Any, upstream: UpstreamRequest, route: Route, cred: Credential
) -> Reply | ProviderError:
    """One attempt: the provider's reply, or why it failed."""
    assert rt.upstream is not None
    try:
        # The whole exchange (connecting included) within the credential's timeout.
        resp = await rt.upstream.fetch(
            upstream.url, upstream.body, upstream.headers, timeout_s=cred.timeout_s
        )
    except (TimeoutError, UpstreamError) as exc:
        return connect_error(exc, cred)
    data, status, headers = resp.body, resp.status, resp.headers
    retry_after = headers.get("retry-after")
    encoding = headers.get("content-encoding")
    try:
        # Adapters ask for identity; a compressing upstream is decoded, and the client gets
        # the decoded body (`_answer` relays no upstream content-encoding).
        data = decode_body(data, encoding)
    except ProviderError as exc:
        return exc
    if status >= 300:
        return status_error(status, data, retry_after)
    try:
        return adapter.reply(call.endpoint, data, orjson.loads(data), route.model)
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
        return ProviderError(
            502,
            "The provider returned a malformed response.",
            retryable=True,
            error_type="upstream_malformed",
        )


async def _answer(
    rt: Runtime,
    call: Call,
    route: Route,
    attempt: str,
    admission: Admission,
    reply: Reply,
    send: Any,
) -> None:
    usage = reply.usage
    estimated = not usage.reported
    if estimated:
        usage.input_tokens = call.estimated_input
    cost = add_usage(call, route, usage)
    call.events.append(
        usage_event(call, attempt, route, usage, cost, status=200, estimated=estimated)
    )
    await account(rt.enforcer, rt.usage, call, admission, success=True)
    headers = header_list(
        {
            **admission.headers,
            "alephant-request-id": call.request_id,
            "alephant-cost-usd": usd_exact(call.cost),
            "alephant-provider": route.provider,
            "alephant-model": route.model,
        }
    )
    if call.cache_ttl:
        headers.append((b"alephant-cache", b"miss"))
    await send_bytes(send, 200, reply.body, headers)
    if call.cache_ttl:
        await cache.store(
            rt.redis,
            call.key["workspace_id"],
            call.cache_fingerprint,
            reply.body,
            ttl_s=call.cache_ttl,
            cost_usd=cost,
            provider=route.provider,
            model=route.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            max_bytes=rt.config.cache_max_bytes,
        )
