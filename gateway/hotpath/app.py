"""The gateway's ASGI app: one funnel for every `/v1/*` route.

`Gateway` is the ASGI entry: lifespan (startup/shutdown of the `Runtime`), dispatch by route,
and the one place errors become responses (a `GatewayError` in the route's API style, Redis down
-> 503, anything else -> 500 without a stack trace). The request itself runs in `funnel.py`.

No Django here (import-linter contract in pyproject.toml): key and workspace snapshots come
from Redis through `SnapshotCache`; the cold-path loaders (snapshots, ledger counters) are
injected by `gateway/asgi.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from redis.exceptions import RedisError

from gateway.hotpath.admission import CounterLoader
from gateway.hotpath.call import Call
from gateway.hotpath.catalog import list_models
from gateway.hotpath.config import Config
from gateway.hotpath.funnel import ROUTES, proxy
from gateway.hotpath.gctune import tune_gc
from gateway.hotpath.http import GatewayError, header_list, send_bytes
from gateway.hotpath.runtime import EnforcerFactory, Runtime
from gateway.hotpath.scrape import CONTENT_TYPE, authorized, render
from gateway.hotpath.snapshots import Loader
from gateway.hotpath.telemetry import Telemetry

logger = logging.getLogger("alephant.gateway")

__all__ = ["Config", "Gateway"]


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        loader: Loader | None = None,
        counter_loader: CounterLoader | None = None,
        enforcer_factory: EnforcerFactory | None = None,
    ) -> None:
        """`loader(kind, ident)`: a snapshot on a Redis miss (runs in a thread);
        `counter_loader(workspace_id, items)`: ledger totals for missing counters. Without a
        counter loader a missing counter refuses the call (503), never reads as zero."""
        self.config = config
        self.runtime = Runtime(
            config,
            loader=loader,
            counter_loader=counter_loader,
            enforcer_factory=enforcer_factory,
        )
        self._start_lock: asyncio.Lock | None = None
        self.telemetry = Telemetry(config)

    async def startup(self) -> None:
        if not self.runtime.started:
            await self.runtime.start()
            self.telemetry.start()  # flushes the per-call deltas into the metrics every 0.5 s
            if self.config.gc_tuning:
                tune_gc()

    async def shutdown(self) -> None:
        await self.runtime.close()
        self.telemetry.close()

    async def _ensure_started(self) -> None:
        if self.runtime.started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            await self.startup()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._ensure_started()
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # report, don't crash the server loop
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope["path"].rstrip("/") or "/"
        method = scope["method"].encode()
        if path == "/metrics" and method == b"GET":
            await self.metrics(scope, send)
            return
        endpoint = ROUTES.get((method, path))
        call = Call(
            request_id="req_" + os.urandom(12).hex(),
            endpoint=endpoint or "",
            style="anthropic" if path == "/v1/messages" else "openai",
            started=time.perf_counter(),
            created_at=time.time(),
        )
        try:
            await self._call(call, endpoint, method, path, scope, receive, send)
        finally:
            self.telemetry.record(call, scope)  # the one telemetry hook: the call has ended

    async def _call(
        self, call: Call, endpoint: str | None, method: bytes, path: str, *asgi: Any
    ) -> None:
        scope, receive, send = asgi
        try:
            if endpoint is not None:
                await proxy(self.runtime, call, scope, receive, send)
            elif method == b"GET" and path == "/v1/models":
                await list_models(self.runtime, call, scope, send)
            else:
                raise GatewayError(
                    404, f"Unknown route {scope['method']} {scope['path']}", code="unknown_url"
                )
        except GatewayError as exc:
            await _send_error(send, call, exc)
        except ConnectionResetError:
            call.status = 499  # the client left
            return
        except (RedisError, OSError) as exc:  # snapshots or counters unreachable: fail closed
            logger.error("gateway: redis unavailable in %s: %r", call.request_id, exc)
            unavailable = GatewayError(
                503,
                "The gateway's state store is unavailable; retry shortly.",
                error_type="service_unavailable",
                headers={"retry-after": "5"},
            )
            await _send_error(send, call, unavailable)
        except Exception:  # never a stack trace (or a secret) to the client
            logger.exception("gateway: unhandled error in %s", call.request_id)
            await _send_error(
                send, call, GatewayError(500, "Internal gateway error.", error_type="api_error")
            )

    async def metrics(self, scope: dict, send: Any) -> None:
        """Prometheus text format; `ALEPHANT_METRICS_TOKEN` set: a bearer token is required."""
        if not authorized(self.config.metrics_token, scope["headers"]):
            headers = [(b"www-authenticate", b"Bearer")]
            await send_bytes(send, 401, b"unauthorized\n", headers, content_type=b"text/plain")
            return
        await self._ensure_started()
        self.telemetry.flush()  # this process' calls so far, not up to FLUSH_SECONDS late
        body = await render(
            self.runtime.redis,
            self.telemetry.registry,
            per_workspace=self.config.metrics_per_workspace,
        )
        await send_bytes(send, 200, body, content_type=CONTENT_TYPE)


async def _send_error(send: Any, call: Call, err: GatewayError) -> None:
    call.status, call.error_type = err.status, err.error_type
    headers = {"alephant-request-id": call.request_id, **err.headers}
    await send_bytes(send, err.status, err.body(call.style), header_list(headers))
