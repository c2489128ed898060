"""A streamed call: open the upstream stream (retry or fall back until it opens), relay it as
server-sent events, read usage as it passes, and hold the end of the stream until the usage
event is in Redis. A client that leaves closes the upstream at once (billed what was produced)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from core.http1 import Response, UpstreamError
from core.money import usd_exact
from gateway.hotpath.accounting import account, attempt_failed, give_up
from gateway.hotpath.admission import Admission
from gateway.hotpath.call import Call, add_usage, usage_event
from gateway.hotpath.forward import attempt_id, build_upstream, connect_error, status_error
from gateway.hotpath.http import header_list
from gateway.hotpath.providers import adapter_for
from gateway.hotpath.providers.base import ProviderError, Usage
from gateway.hotpath.providers.encoding import BodyDecoder, decode_body
from gateway.hotpath.routing import Route
from gateway.hotpath.runtime import Runtime
from gateway.hotpath.streamcut import stream_cut_event

logger = logging.getLogger("alephant.gateway")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class _StreamState:
    __slots__ = ("disconnected", "finished")

    def __init__(self) -> None:
        self.disconnected = False
        self.finished = False


async def forward_stream(
    rt: Runtime,
    call: Call,
    body: dict,
    plan: list[Route],
    admission: Admission,
    receive: Any,
    send: Any,
    client_wants_usage: bool,
) -> None:
    """`client_wants_usage`: the request's validated `stream_options.include_usage`."""
    assert rt.upstream is not None
    last: ProviderError | None = None
    for index, route in enumerate(plan):
        adapter = adapter_for(route.provider)
        cred = rt.credentials.get(call.key["workspace_id"], route.credential)
        upstream = build_upstream(adapter, call, body, route, cred, True)
        call.attempts += 1
        started = time.perf_counter()
        try:
            # Connecting within the connect timeout; then each read within the credential's.
            resp = await rt.upstream.open(
                upstream.url, upstream.body, upstream.headers, read_timeout_s=cred.timeout_s
            )
        except (TimeoutError, UpstreamError) as exc:
            last = connect_error(exc, cred)
        else:
            call.upstream_s += time.perf_counter() - started
            if resp.status < 300:
                streamer = adapter.streamer(call.endpoint, client_wants_usage, route.model)
                relay = _Relay(rt, call, route, resp, attempt_id(call, index), admission)
                await relay.run(streamer, receive, send)
                return
            last = await _refused(resp)
        if not await attempt_failed(call, plan, index, route, last, attempt_id(call, index), cred):
            break
    await give_up(rt.enforcer, rt.usage, call, admission, last)


async def _refused(resp: Response) -> ProviderError:
    try:
        data = await resp.read()
    except (UpstreamError, TimeoutError):
        data = b""
    resp.close()
    try:
        data = decode_body(data, resp.headers.get("content-encoding"))
    except ProviderError:
        data = b""
    return status_error(resp.status, data, resp.headers.get("retry-after"))


async def _watch_disconnect(receive: Any, state: _StreamState, resp: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not state.finished:
                state.disconnected = True
                resp.close()
            return


class _Relay:
    """One upstream stream relayed to the client, then priced and accounted."""

    def __init__(
        self,
        rt: Runtime,
        call: Call,
        route: Route,
        resp: Response,
        attempt: str,
        admission: Admission,
    ) -> None:
        self.rt, self.call, self.route, self.resp = rt, call, route, resp
        self.attempt, self.admission = attempt, admission
        self.state = _StreamState()
        self.held: list[bytes] = []  # the end of the stream waits until the usage event is queued

    async def run(self, streamer: Any, receive: Any, send: Any) -> None:
        call, route = self.call, self.route
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *SSE_HEADERS,
                    (b"alephant-request-id", call.request_id.encode()),
                    (b"alephant-provider", route.provider.encode()),
                    (b"alephant-model", route.model.encode("utf-8", "replace")),
                    *header_list(self.admission.headers),
                ],
            }
        )
        started = time.perf_counter()
        upstream_error = await self._pump(streamer, receive, send)
        call.upstream_s += time.perf_counter() - started  # the provider's time, for telemetry
        tail = streamer.finish()
        await self._settle(streamer, upstream_error)
        if not self.state.disconnected:
            # Cut before its terminal event: end with an error the SDKs raise, never a clean end.
            cut = b"" if streamer.done else self._cut_event(upstream_error)
            trailer = b": alephant-cost-usd=" + usd_exact(call.cost).encode() + b"\n\n"
            body = b"".join(self.held) + tail + cut + trailer
            await send({"type": "http.response.body", "body": body, "more_body": False})

    def _cut_event(self, upstream_error: str) -> bytes:
        call = self.call
        return stream_cut_event(
            style=call.style,
            endpoint=call.endpoint,
            error_type=upstream_error or "upstream_truncated",
            request_id=call.request_id,
        )

    async def _pump(self, streamer: Any, receive: Any, send: Any) -> str:
        """Relay chunks until the upstream ends; '' or why the stream ended early."""
        state, resp = self.state, self.resp
        # The watcher closes the upstream when the client leaves while we wait on it. An
        # upstream whose whole answer is already read (short answers, cached or fast ones) is
        # never waited on: the task (created, then cancelled: ~2 % of such a call) is skipped; the
        # answer was produced in full and is billed in full whether or not the client stays.
        watcher = (
            None if resp.at_eof() else asyncio.create_task(_watch_disconnect(receive, state, resp))
        )
        upstream_error = ""
        try:
            # Adapters ask for identity; an upstream that compresses anyway is decoded here
            # (the client gets SSE in plain text: no content-encoding is relayed).
            decoder = BodyDecoder(resp.headers.get("content-encoding"))
            async for chunk in resp:
                await self._relay(streamer.feed(decoder.feed(chunk)), streamer, send)
                if state.disconnected:
                    break
            else:
                await self._relay(streamer.feed(decoder.flush()), streamer, send)
        except ProviderError:  # an undecodable body (corrupt, unknown encoding, a bomb)
            logger.warning(
                "gateway: undecodable stream from %s in %s",
                self.route.provider,
                self.call.request_id,
            )
            upstream_error = "upstream_malformed"
        except TimeoutError:
            upstream_error = "upstream_timeout"
        except (UpstreamError, ConnectionError):
            upstream_error = "" if state.disconnected else "upstream_truncated"
        except (ValueError, TypeError, AttributeError, KeyError):
            # An answer we can't read: end the stream cleanly and bill what we saw.
            logger.warning(
                "gateway: unreadable stream from %s in %s",
                self.route.provider,
                self.call.request_id,
            )
            upstream_error = "upstream_malformed"
        finally:
            state.finished = True
            resp.close()
            if watcher is not None and not watcher.done():
                watcher.cancel()
        return upstream_error

    async def _relay(self, out: bytes, streamer: Any, send: Any) -> None:
        if streamer.done:
            if out:
                self.held.append(out)
        elif out:
            await send({"type": "http.response.body", "body": out, "more_body": True})

    async def _settle(self, streamer: Any, upstream_error: str) -> None:
        call = self.call
        usage: Usage = streamer.usage
        complete = streamer.done and usage.reported
        if not complete:
            # No final usage (client left, stream cut): bill what was produced, marked estimated.
            usage.input_tokens = usage.input_tokens or call.estimated_input
            usage.output_tokens = max(usage.output_tokens, streamer.estimated_output_tokens())
        cost = add_usage(call, self.route, usage)
        if self.state.disconnected:
            status, error_type = 499, "client_disconnected"
        elif complete:
            status, error_type = 200, ""
        else:
            status, error_type = 502, upstream_error or "upstream_truncated"
        call.events.append(
            usage_event(
                call,
                self.attempt,
                self.route,
                usage,
                cost,
                status=status,
                error_type=error_type,
                estimated=not complete,
            )
        )
        await account(self.rt.enforcer, self.rt.usage, call, self.admission, success=True)
