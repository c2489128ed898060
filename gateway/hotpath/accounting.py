"""After the provider answered (or didn't): settle or release the reservation, and put every
attempt's usage event in Redis before the client sees the end of its answer."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any, NoReturn

from core.money import usd_exact
from core.pricing import usd_to_nanos
from gateway.hotpath.admission import Admission
from gateway.hotpath.cache import Entry
from gateway.hotpath.call import Call, usage_event
from gateway.hotpath.enforcer import Enforcer
from gateway.hotpath.http import GatewayError, header_list, send_bytes
from gateway.hotpath.providers.base import Credential, ProviderError, Usage
from gateway.hotpath.routing import Route
from gateway.hotpath.usage import UsageQueue
from gateway.hotpath.usage import encode as usage_encode

logger = logging.getLogger("alephant.gateway")


async def account(
    enforcer: Enforcer, queue: UsageQueue, call: Call, admission: Admission, *, success: bool
) -> None:
    """Settle (or release) the reservation and append the attempts' usage events: one
    script call does both when a budget is on the chain (one round trip, atomic); else the
    events go through the usage queue. Either way they are in Redis, or if Redis is down in
    the local spool (`spool.py`), when this returns."""
    events = [usage_encode(e) for e in call.events]
    stream = queue.stream_for(call.key["workspace_id"])
    try:
        if success or call.cost > 0:
            written = await enforcer.settle(
                admission,
                cost_nanos=usd_to_nanos(call.cost),
                tokens=call.tokens,
                usage=events,
                usage_stream=stream,
            )
        else:
            written = await enforcer.release(admission, usage=events, usage_stream=stream)
    except Exception as exc:
        logger.error("gateway: settling %s failed: %r", call.request_id, exc)
        written = False
    if events and not written:
        # Redis died mid-call: the events go to the local spool (fsynced) before the client's
        # answer completes. The reservation stays until its TTL (README, "Budgets").
        await queue.emit_durable(events, request_id=call.request_id)
    await queue.confirm_replicated(events, request_id=call.request_id)


async def release_unsettled(
    enforcer: Enforcer, queue: UsageQueue, call: Call, admission: Admission
) -> None:
    """The call ended abnormally (cancelled, crashed): release what it still holds."""
    if not getattr(admission.handle, "done", True):
        await asyncio.shield(account(enforcer, queue, call, admission, success=False))


async def serve_cached(
    queue: UsageQueue, call: Call, route: Route, entry: Entry, send: Any
) -> None:
    """A cache hit: free, recorded with what the original call cost as `saved_usd`."""
    usage = Usage(input_tokens=entry.input_tokens, output_tokens=entry.output_tokens, reported=True)
    call.events.append(
        usage_event(
            call,
            call.request_id,
            route,
            usage,
            Decimal(0),
            status=200,
            cache_hit=True,
            saved=entry.cost_usd,
        )
    )
    # Redis answered the cache read a moment ago; if it died since, the event is spooled.
    events = [usage_encode(e) for e in call.events]
    await queue.emit_durable(events, request_id=call.request_id)
    await queue.confirm_replicated(events, request_id=call.request_id)
    headers = header_list(
        {
            "alephant-request-id": call.request_id,
            "alephant-cost-usd": usd_exact(Decimal(0)),
            "alephant-cache": "hit",
            "alephant-saved-usd": usd_exact(entry.cost_usd),
        }
    )
    await send_bytes(send, 200, entry.body, headers)


async def attempt_failed(
    call: Call,
    plan: list[Route],
    index: int,
    route: Route,
    err: ProviderError,
    attempt_id: str,
    cred: Credential | None,
) -> bool:
    """Record a failed attempt; True if the funnel should try the next one (after a pause)."""
    if cred is not None and cred.secret and cred.secret in err.message:
        err.message = err.message.replace(cred.secret, "***")
    call.events.append(
        usage_event(
            call,
            attempt_id,
            route,
            Usage(),
            Decimal(0),
            status=err.status,
            error_type=err.error_type,
        )
    )
    if not err.retryable or index + 1 >= len(plan):
        return False
    delay = 0.05 * (2**index)
    if err.retry_after and err.retry_after.isdigit():
        delay = min(float(err.retry_after), 2.0)
    await asyncio.sleep(delay)
    return True


async def give_up(
    enforcer: Enforcer,
    queue: UsageQueue,
    call: Call,
    admission: Admission,
    last: ProviderError | None,
) -> NoReturn:
    """Every attempt failed: release the reservation, answer with the last provider error."""
    await account(enforcer, queue, call, admission, success=False)
    assert last is not None
    extra = {**admission.headers}
    if last.retry_after:
        extra["retry-after"] = last.retry_after
    raise GatewayError(
        last.status, last.message, error_type=last.error_type, code=last.error_type, headers=extra
    )


def transport_error(exc: BaseException, cred: Any) -> ProviderError:
    """What a failed connection to the provider means for the client (both retryable)."""
    if isinstance(exc, TimeoutError):
        return ProviderError(
            504,
            f"The provider did not answer within {cred.timeout_s:g} s.",
            retryable=True,
            error_type="upstream_timeout",
        )
    return ProviderError(
        502,
        f"Could not reach the provider for `{cred.name}`.",
        retryable=True,
        error_type="upstream_unreachable",
    )
