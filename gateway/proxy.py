"""The gateway's ASGI app: one funnel for every `/v1/*` route.

authenticate -> resolve model/provider/credential -> enforce (`gateway.enforcement.Enforcer`:
admit before forwarding, settle after, release on failure) -> forward (one shared aiohttp
session per worker; retries, optional fallback model) -> account (one usage event per attempt on
the Redis stream, appended *before* the client sees the end of its answer).

No Django here (import-linter contract in pyproject.toml): key and workspace snapshots come
from Redis through `SnapshotCache`, whose cold-path loader is injected by `gateway/asgi.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from billing.pricing import format_usd, resolve_price, usd_to_nanos
from gateway import cache, vault
from gateway.enforcement import Admission, AdmitRequest, Enforcer, RespClient
from gateway.hotpath.http import BodyTooLarge, GatewayError, header_list, read_body, send_bytes
from gateway.hotpath.routing import (
    Attribution,
    Route,
    attribution,
    fingerprint,
    model_allowed,
    resolve_route,
)
from gateway.hotpath.snapshots import Loader, SnapshotCache
from gateway.keyhash import hash_key, looks_like_key
from gateway.hotpath.providers import adapter_for
from gateway.hotpath.providers.base import (
    Credential,
    ProviderError,
    UnsupportedRoute,
    Usage,
    error_from_status,
    provider_message,
)
from gateway.usage import UsageQueue
from gateway.usage import encode as usage_encode

logger = logging.getLogger("alephant.gateway")

ROUTES = {
    (b"POST", "/v1/chat/completions"): "chat",
    (b"POST", "/v1/completions"): "completions",
    (b"POST", "/v1/embeddings"): "embeddings",
    (b"POST", "/v1/responses"): "responses",
    (b"POST", "/v1/messages"): "messages",
}
REQUIRED = {
    "chat": ("messages",),
    "completions": ("prompt",),
    "embeddings": ("input",),
    "responses": ("input",),
    "messages": ("messages", "max_tokens"),
}
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class Config:
    key_hash_secret: str
    redis_url: str = "redis://127.0.0.1:63799/0"
    max_body_bytes: int = 8 * 1024 * 1024
    retries: int = 1
    connect_timeout_s: float = 10.0
    default_max_output_tokens: int = 4096
    pool_size: int = 1000

    @classmethod
    def from_env(cls) -> Config:
        secret = os.environ.get("ALEPHANT_KEY_HASH_SECRET") or os.environ.get("DJANGO_SECRET_KEY")
        return cls(
            key_hash_secret=secret or "insecure-local-development-key-change-me",
            redis_url=os.environ.get("REDIS_URL", cls.redis_url),
            max_body_bytes=_env_int("ALEPHANT_MAX_BODY_BYTES", cls.max_body_bytes),
            retries=_env_int("ALEPHANT_UPSTREAM_RETRIES", cls.retries),
            connect_timeout_s=float(_env_int("ALEPHANT_UPSTREAM_CONNECT_TIMEOUT_S", 10)),
            default_max_output_tokens=_env_int(
                "ALEPHANT_DEFAULT_MAX_OUTPUT_TOKENS", cls.default_max_output_tokens
            ),
            pool_size=_env_int("ALEPHANT_UPSTREAM_POOL_SIZE", cls.pool_size),
        )


@dataclass
class Call:
    """Everything the funnel learned about one client request."""

    request_id: str
    endpoint: str
    style: str
    started: float  # perf_counter
    created_at: float  # unix time
    key: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)
    who: Attribution | None = None
    fingerprint: str = ""
    stream: bool = False
    estimated_input: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    tokens: int = 0
    cache_ttl: int = 0  # > 0: answers are cached (gateway/cache.py) this long
    cache_fingerprint: str = ""


class _StreamState:
    __slots__ = ("disconnected", "finished")

    def __init__(self) -> None:
        self.disconnected = False
        self.finished = False


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


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        loader: Loader | None = None,
        enforcer_factory: Any = None,
    ) -> None:
        self.config = config
        self.loader = loader
        self.enforcer_factory = enforcer_factory or Enforcer.from_env
        self.session: aiohttp.ClientSession | None = None
        self._secrets: dict[tuple, str] = {}
        self._timeouts: dict[tuple, aiohttp.ClientTimeout] = {}
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def startup(self) -> None:
        if self._started:
            return
        connector = aiohttp.TCPConnector(
            limit=self.config.pool_size, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_s),
        )
        # Blocking pool: a burst waits for a connection instead of failing ("too many
        # connections" would read as Redis down -> 503); one quick retry, not redis-py's default
        # backoff, so a dead Redis costs milliseconds before the 503.
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = aioredis.BlockingConnectionPool.from_url(
            self.config.redis_url,
            max_connections=256,
            timeout=5,
            socket_connect_timeout=1,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.snapshots = SnapshotCache(self.redis, self.loader)
        # The per-call commands (admit, settle + usage event) go over one lean pipelined
        # connection (`RespClient`): far less client CPU per command than redis-py's pool.
        try:
            self.call_redis: Any = RespClient.from_url(
                self.config.redis_url, timeout_s=5, connect_timeout_s=1
            )
        except ValueError:  # rediss:// or a socket path: redis-py handles those
            self.call_redis = self.redis
        self.enforcer: Enforcer = self.enforcer_factory(self.call_redis)
        self.usage = UsageQueue(self.call_redis)
        self._started = True

    async def shutdown(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self._started:
            if self.call_redis is not self.redis:
                await self.call_redis.aclose()
            await self.redis.aclose()
        self._started = False

    async def _ensure_started(self) -> None:
        if self._started:
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

    # --- dispatch ---------------------------------------------------------------------------

    async def http(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope["path"].rstrip("/") or "/"
        method = scope["method"].encode()
        endpoint = ROUTES.get((method, path))
        call = Call(
            request_id="req_" + os.urandom(12).hex(),
            endpoint=endpoint or "",
            style="anthropic" if path == "/v1/messages" else "openai",
            started=time.perf_counter(),
            created_at=time.time(),
        )
        try:
            if endpoint is not None:
                await self.proxy(call, scope, receive, send)
            elif method == b"GET" and path == "/v1/models":
                await self.models(call, scope, send)
            else:
                raise GatewayError(
                    404, f"Unknown route {scope['method']} {scope['path']}", code="unknown_url"
                )
        except GatewayError as exc:
            headers = {"alephant-request-id": call.request_id, **exc.headers}
            await send_bytes(send, exc.status, exc.body(call.style), header_list(headers))
        except ConnectionResetError:
            return
        except (RedisError, OSError) as exc:  # snapshots or counters unreachable: fail closed
            logger.error("gateway: redis unavailable in %s: %r", call.request_id, exc)
            err = GatewayError(
                503,
                "The gateway's state store is unavailable; retry shortly.",
                error_type="service_unavailable",
                headers={"retry-after": "5"},
            )
            await send_bytes(
                send,
                503,
                err.body(call.style),
                header_list({"alephant-request-id": call.request_id, **err.headers}),
            )
        except Exception:  # never a stack trace (or a secret) to the client
            logger.exception("gateway: unhandled error in %s", call.request_id)
            err = GatewayError(500, "Internal gateway error.", error_type="api_error")
            await send_bytes(
                send,
                500,
                err.body(call.style),
                header_list({"alephant-request-id": call.request_id}),
            )

    # --- funnel steps -----------------------------------------------------------------------

    async def authenticate(self, headers: dict[bytes, bytes]) -> dict[str, Any]:
        auth = headers.get(b"authorization", b"")
        raw = auth[7:] if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
        token = raw.decode("latin-1").strip()
        if not token:
            raise GatewayError(
                401,
                "Missing API key: send `Authorization: Bearer alph_...` or `x-api-key`.",
                code="missing_api_key",
            )
        if not looks_like_key(token):
            raise GatewayError(401, "Invalid API key.", code="invalid_api_key")
        key = await self.snapshots.get("gk", hash_key(token, self.config.key_hash_secret))
        if key is None or key.get("revoked"):
            raise GatewayError(401, "Invalid or revoked API key.", code="invalid_api_key")
        expires = key.get("expires_at")
        if expires is not None and expires <= time.time():
            raise GatewayError(401, "This API key has expired.", code="expired_api_key")
        return key

    async def _workspace(self, key: dict[str, Any]) -> dict[str, Any]:
        workspace = await self.snapshots.get("ws", str(key["workspace_id"]))
        if workspace is None:
            raise GatewayError(401, "Invalid API key.", code="invalid_api_key")
        return workspace

    def credential(self, workspace_id: int, cred: dict[str, Any]) -> Credential:
        enc = cred.get("enc") or {}
        cache_key = (workspace_id, cred.get("id"), enc.get("ciphertext"), enc.get("wrapped_dek"))
        secret = self._secrets.get(cache_key)
        if secret is None:
            try:
                secret = vault.open_secret(workspace_id, enc)
            except vault.VaultError:
                raise GatewayError(
                    502,
                    f"The provider key `{cred.get('name')}` could not be decrypted; ask a "
                    "workspace admin to check the master key.",
                    error_type="upstream_error",
                    code="credential_unavailable",
                ) from None
            if len(self._secrets) > 10_000:
                self._secrets.clear()
            self._secrets[cache_key] = secret
        return Credential(
            id=cred.get("id") or 0,
            provider=cred["provider"],
            name=cred.get("name") or "",
            base_url=cred.get("base_url"),
            api_version=cred.get("api_version"),
            organization=cred.get("organization"),
            timeout_s=float(cred.get("timeout_s") or 120),
            secret=secret,
        )

    def _timeout(self, seconds: float, stream: bool) -> aiohttp.ClientTimeout:
        key = (seconds, stream)
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect = self.config.connect_timeout_s
            timeout = (
                aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=seconds)
                if stream
                else aiohttp.ClientTimeout(total=seconds, sock_connect=connect)
            )
            self._timeouts[key] = timeout
        return timeout

    def _event(
        self,
        call: Call,
        attempt_id: str,
        route: Route,
        usage: Usage,
        cost: Decimal,
        *,
        status: int,
        error_type: str = "",
        estimated: bool = False,
        cache_hit: bool = False,
        saved: Decimal | None = None,
    ) -> dict[str, Any]:
        who = call.who
        assert who is not None
        return {
            "request_id": attempt_id,
            "workspace_id": call.key["workspace_id"],
            "gateway_key_id": call.key.get("key_id"),
            "member_id": who.member_id,
            "department_id": who.department_id,
            "agent_id": who.agent_id,
            "session_id": who.session_id,
            "session_path": who.session_path,
            "session_name": who.session_name,
            "properties": who.properties,
            "provider": route.provider,
            "model": route.model,
            "endpoint": call.endpoint,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost_usd": str(cost),
            "saved_usd": str(saved) if saved is not None else "0",
            "cache_hit": cache_hit,
            "status_code": status,
            "error_type": error_type,
            "estimated": estimated,
            "stream": call.stream,
            "latency_ms": int((time.perf_counter() - call.started) * 1000),
            "fingerprint": call.fingerprint,
            "created_at": call.created_at,
        }

    async def _account(self, call: Call, admission: Admission, *, success: bool) -> None:
        """Settle (or release) the reservation and append the attempts' usage events: one
        script call does both when a budget is on the chain (one round trip, atomic); else the
        events go through the usage queue. Either way they are in Redis when this returns."""
        events = [usage_encode(e) for e in call.events]
        stream = self.usage.stream
        try:
            if success or call.cost > 0:
                written = await self.enforcer.settle(
                    admission,
                    cost_nanos=usd_to_nanos(call.cost),
                    tokens=call.tokens,
                    usage=events,
                    usage_stream=stream,
                )
            else:
                written = await self.enforcer.release(admission, usage=events, usage_stream=stream)
        except Exception as exc:
            logger.error("gateway: settling %s failed: %r", call.request_id, exc)
            written = False
        if events and not written:
            try:
                await self.usage.emit_encoded(events)
            except Exception as exc:
                logger.error("gateway: usage event for %s failed: %r", call.request_id, exc)

    def _plan(self, call: Call, headers: dict[bytes, bytes], ref: str, route: Route) -> list[Route]:
        plan = [route] * (1 + max(0, self.config.retries))
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

    async def proxy(self, call: Call, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        call.key = await self.authenticate(headers)
        try:
            raw = await read_body(receive, self.config.max_body_bytes)
        except BodyTooLarge:
            raise GatewayError(
                400,
                f"Request body is larger than {self.config.max_body_bytes} "
                "bytes (ALEPHANT_MAX_BODY_BYTES).",
                code="request_too_large",
            ) from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise GatewayError(
                400, "Request body is not valid JSON.", code="invalid_json"
            ) from None
        if not isinstance(body, dict):
            raise GatewayError(400, "Request body must be a JSON object.", code="invalid_json")
        ref = body.get("model")
        if not isinstance(ref, str) or not ref:
            raise GatewayError(
                400,
                "Missing required parameter: `model`.",
                param="model",
                code="missing_required_parameter",
            )
        for name in REQUIRED[call.endpoint]:
            if body.get(name) in (None, "", []):
                raise GatewayError(
                    400,
                    f"Missing required parameter: `{name}`.",
                    param=name,
                    code="missing_required_parameter",
                )
        call.workspace = await self._workspace(call.key)
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
        call.who = attribution(call.key, headers)
        call.fingerprint = fingerprint(ref, body)
        call.stream = bool(body.get("stream")) and call.endpoint != "embeddings"
        call.estimated_input = max(1, len(raw) // 4)
        plan = self._plan(call, headers, ref, route)
        if not call.stream:
            call.cache_ttl = cache.ttl_for(
                call.workspace, call.key, call.who.agent_id, headers.get(cache.HEADER)
            )
            if call.cache_ttl:
                call.cache_fingerprint = cache.request_fingerprint(call.endpoint, body)
                entry = await cache.lookup(
                    self.redis, call.key["workspace_id"], call.cache_fingerprint
                )
                if entry is not None:
                    await self._serve_cached(call, route, entry, send)
                    return

        if call.endpoint == "embeddings":
            max_out = 0
        else:
            max_out = int(
                body.get("max_completion_tokens")
                or body.get("max_tokens")
                or body.get("max_output_tokens")
                or self.config.default_max_output_tokens
            )
        worst = max(
            r.pricing.worst_case(input_tokens=call.estimated_input, max_output_tokens=max_out)
            for r in {id(r): r for r in plan}.values()
        )
        who = call.who
        admission = await self.enforcer.admit(
            AdmitRequest(
                request_id=call.request_id,
                workspace_id=call.key["workspace_id"],
                key_id=call.key.get("key_id") or 0,
                member_id=who.member_id,
                department_id=who.department_id,
                agent_id=who.agent_id,
                provider=route.provider,
                model=route.model,
                estimated_input_tokens=call.estimated_input,
                max_output_tokens=max_out,
                reserve_nanos=usd_to_nanos(worst),
                fingerprint=call.fingerprint,
                session_id=who.session_id or None,
            ),
            call.workspace,
            call.key,
        )
        if not admission.allowed:
            call.events.append(
                self._event(
                    call,
                    call.request_id,
                    route,
                    Usage(),
                    Decimal(0),
                    status=admission.status,
                    error_type=admission.error_type or "refused",
                )
            )
            await self._account(call, admission, success=False)
            raise GatewayError(
                admission.status,
                admission.message or "Request refused.",
                error_type=admission.error_type,
                code=admission.error_type,
                headers=admission.headers,
                details=getattr(admission, "details", None),
            )
        try:
            if call.stream:
                await self.forward_stream(call, body, raw, plan, admission, receive, send)
            else:
                await self.forward(call, body, raw, plan, admission, send)
        except BaseException:
            if not getattr(admission.handle, "done", True):
                await asyncio.shield(self._account(call, admission, success=False))
            raise

    async def _attempt_failed(
        self,
        call: Call,
        plan: list[Route],
        index: int,
        route: Route,
        err: ProviderError,
        attempt_id: str,
        cred: Credential | None,
    ) -> bool:
        """Record a failed attempt; True if the funnel should try the next one."""
        if cred is not None and cred.secret and cred.secret in err.message:
            err.message = err.message.replace(cred.secret, "***")
        call.events.append(
            self._event(
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

    async def forward(
        self,
        call: Call,
        body: dict,
        raw: bytes,
        plan: list[Route],
        admission: Admission,
        send: Any,
    ) -> None:
        assert self.session is not None
        last: ProviderError | None = None
        for index, route in enumerate(plan):
            attempt_id = call.request_id if index == 0 else f"{call.request_id}-{index}"
            adapter = adapter_for(route.provider)
            cred = self.credential(call.key["workspace_id"], route.credential)
            try:
                upstream = adapter.build(call.endpoint, body, raw, route.model, cred, False)
            except UnsupportedRoute as exc:
                raise GatewayError(400, str(exc), code="unsupported_endpoint") from None
            try:
                async with self.session.post(
                    upstream.url,
                    data=upstream.body,
                    headers=upstream.headers,
                    timeout=self._timeout(cred.timeout_s, False),
                ) as resp:
                    data = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("retry-after")
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = transport_error(exc, cred)
            else:
                if status >= 400:
                    last = error_from_status(status, provider_message(data), retry_after)
                else:
                    try:
                        parsed = orjson.loads(data)
                        reply = adapter.reply(call.endpoint, data, parsed, route.model)
                    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
                        last = ProviderError(
                            502,
                            "The provider returned a malformed response.",
                            retryable=True,
                            error_type="upstream_malformed",
                        )
                    else:
                        usage = reply.usage
                        estimated = not usage.reported
                        if estimated:
                            usage.input_tokens = call.estimated_input
                        cost = route.pricing.cost(
                            input_tokens=usage.input_tokens,
                            output_tokens=usage.output_tokens,
                            cached_tokens=usage.cached_tokens,
                            cache_write_tokens=usage.cache_write_tokens,
                        )
                        call.cost += cost
                        call.tokens += usage.total
                        call.events.append(
                            self._event(
                                call,
                                attempt_id,
                                route,
                                usage,
                                cost,
                                status=200,
                                estimated=estimated,
                            )
                        )
                        await self._account(call, admission, success=True)
                        headers = header_list(
                            {
                                **admission.headers,
                                "alephant-request-id": call.request_id,
                                "alephant-cost-usd": format_usd(call.cost),
                                "alephant-provider": route.provider,
                                "alephant-model": route.model,
                            }
                        )
                        if call.cache_ttl:
                            headers.append((b"alephant-cache", b"miss"))
                        await send_bytes(send, 200, reply.body, headers)
                        if call.cache_ttl:
                            await cache.store(
                                self.redis,
                                call.key["workspace_id"],
                                call.cache_fingerprint,
                                reply.body,
                                ttl_s=call.cache_ttl,
                                cost_usd=cost,
                                provider=route.provider,
                                model=route.model,
                                input_tokens=usage.input_tokens,
                                output_tokens=usage.output_tokens,
                            )
                        return
            if not await self._attempt_failed(call, plan, index, route, last, attempt_id, cred):
                break
        await self._account(call, admission, success=False)
        assert last is not None
        extra = {**admission.headers}
        if last.retry_after:
            extra["retry-after"] = last.retry_after
        raise GatewayError(
            last.status,
            last.message,
            error_type=last.error_type,
            code=last.error_type,
            headers=extra,
        )

    async def _serve_cached(self, call: Call, route: Route, entry: Any, send: Any) -> None:
        """A cache hit: free, recorded with what the original call cost as `saved_usd`."""
        usage = Usage(
            input_tokens=entry.input_tokens, output_tokens=entry.output_tokens, reported=True
        )
        call.events.append(
            self._event(
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
        await self.usage.emit_many(call.events)
        headers = header_list(
            {
                "alephant-request-id": call.request_id,
                "alephant-cost-usd": format_usd(Decimal(0)),
                "alephant-cache": "hit",
                "alephant-saved-usd": format_usd(entry.cost_usd),
            }
        )
        await send_bytes(send, 200, entry.body, headers)

    async def _watch_disconnect(self, receive: Any, state: _StreamState, resp: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not state.finished:
                    state.disconnected = True
                    resp.close()
                return

    async def forward_stream(
        self,
        call: Call,
        body: dict,
        raw: bytes,
        plan: list[Route],
        admission: Admission,
        receive: Any,
        send: Any,
    ) -> None:
        assert self.session is not None
        client_wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        last: ProviderError | None = None
        for index, route in enumerate(plan):
            attempt_id = call.request_id if index == 0 else f"{call.request_id}-{index}"
            adapter = adapter_for(route.provider)
            cred = self.credential(call.key["workspace_id"], route.credential)
            try:
                upstream = adapter.build(call.endpoint, body, raw, route.model, cred, True)
            except UnsupportedRoute as exc:
                raise GatewayError(400, str(exc), code="unsupported_endpoint") from None
            try:
                resp = await self.session.post(
                    upstream.url,
                    data=upstream.body,
                    headers=upstream.headers,
                    timeout=self._timeout(cred.timeout_s, True),
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = transport_error(exc, cred)
            else:
                if resp.status >= 400:
                    try:
                        data = await resp.read()
                    except (aiohttp.ClientError, TimeoutError):
                        data = b""
                    resp.release()
                    last = error_from_status(
                        resp.status, provider_message(data), resp.headers.get("retry-after")
                    )
                else:
                    await self._relay(
                        call,
                        route,
                        adapter,
                        resp,
                        attempt_id,
                        admission,
                        client_wants_usage,
                        receive,
                        send,
                    )
                    return
            if not await self._attempt_failed(call, plan, index, route, last, attempt_id, cred):
                break
        await self._account(call, admission, success=False)
        assert last is not None
        extra = {**admission.headers}
        if last.retry_after:
            extra["retry-after"] = last.retry_after
        raise GatewayError(
            last.status,
            last.message,
            error_type=last.error_type,
            code=last.error_type,
            headers=extra,
        )

    async def _relay(
        self,
        call: Call,
        route: Route,
        adapter: Any,
        resp: aiohttp.ClientResponse,
        attempt_id: str,
        admission: Admission,
        client_wants_usage: bool,
        receive: Any,
        send: Any,
    ) -> None:
        streamer = adapter.streamer(call.endpoint, client_wants_usage, route.model)
        state = _StreamState()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *SSE_HEADERS,
                    (b"alephant-request-id", call.request_id.encode()),
                    (b"alephant-provider", route.provider.encode()),
                    (b"alephant-model", route.model.encode("utf-8", "replace")),
                    *header_list(admission.headers),
                ],
            }
        )
        watcher = asyncio.create_task(self._watch_disconnect(receive, state, resp))
        held: list[bytes] = []  # the end of the stream waits until the usage event is queued
        upstream_error = ""
        try:
            async for chunk in resp.content.iter_any():
                out = streamer.feed(chunk)
                if streamer.done:
                    if out:
                        held.append(out)
                elif out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if state.disconnected:
                    break
        except TimeoutError:
            upstream_error = "upstream_timeout"
        except (aiohttp.ClientError, ConnectionError):
            upstream_error = "" if state.disconnected else "upstream_truncated"
        except (ValueError, TypeError, AttributeError, KeyError):
            # An answer we can't read: end the stream cleanly and bill what we saw.
            logger.warning(
                "gateway: unreadable stream from %s in %s", route.provider, call.request_id
            )
            upstream_error = "upstream_malformed"
        finally:
            state.finished = True
            resp.close()
            if not watcher.done():
                watcher.cancel()
        tail = streamer.finish()
        usage: Usage = streamer.usage
        complete = streamer.done and usage.reported
        if not complete:
            # No final usage (client left, stream cut): bill what was produced, marked estimated.
            usage.input_tokens = usage.input_tokens or call.estimated_input
            usage.output_tokens = max(usage.output_tokens, streamer.estimated_output_tokens())
        cost = route.pricing.cost(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        call.cost += cost
        call.tokens += usage.total
        if state.disconnected:
            status, error_type = 499, "client_disconnected"
        elif complete:
            status, error_type = 200, ""
        else:
            status, error_type = 502, upstream_error or "upstream_truncated"
        call.events.append(
            self._event(
                call,
                attempt_id,
                route,
                usage,
                cost,
                status=status,
                error_type=error_type,
                estimated=not complete,
            )
        )
        await self._account(call, admission, success=True)
        if not state.disconnected:
            trailer = b": alephant-cost-usd=" + format_usd(call.cost).encode() + b"\n\n"
            await send(
                {
                    "type": "http.response.body",
                    "body": b"".join(held) + tail + trailer,
                    "more_body": False,
                }
            )

    # --- GET /v1/models ---------------------------------------------------------------------

    async def models(self, call: Call, scope: dict, send: Any) -> None:
        key = await self.authenticate(dict(scope["headers"]))
        workspace = await self._workspace(key)
        data = workspace.get("_alephant_models")
        if data is None:
            data = workspace["_alephant_models"] = _model_list(workspace)
        patterns = key.get("allowed_models")
        if patterns:
            import fnmatch

            data = [
                m
                for m in data
                if any(
                    fnmatch.fnmatchcase(name, p)
                    for p in patterns
                    for name in (m["id"], m["alephant"]["provider"] + "/" + m["id"])
                )
            ]
        body = orjson.dumps({"object": "list", "data": data})
        await send_bytes(send, 200, body, header_list({"alephant-request-id": call.request_id}))


def _model_list(workspace: dict[str, Any]) -> list[dict[str, Any]]:
    """Models the workspace's credentials serve, with the prices this workspace pays."""
    from billing.pricing import CATALOG_PROVIDER

    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    overrides = workspace.get("price_overrides") or []
    providers = []
    for cred in workspace.get("credentials") or ():
        if cred.get("provider") not in providers:
            providers.append(cred.get("provider"))

    def add(provider: str, model: str) -> None:
        if (provider, model) in seen:
            return
        try:
            pricing = resolve_price(provider, model, overrides)
        except LookupError:
            return
        seen.add((provider, model))
        out.append(
            {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": provider,
                "alephant": {"provider": provider, "pricing": pricing.public()},
            }
        )

    for row in overrides:
        if row.get("provider") in providers:
            add(row["provider"], row["model"])
    try:
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        by_id = {p.id: p for p in snapshot.providers}
    except Exception:  # the listing is a convenience; never fail the route on it
        by_id = {}
    for provider in providers:
        catalog = by_id.get(CATALOG_PROVIDER.get(provider) or "")
        for info in getattr(catalog, "models", ()) or ():
            add(provider, info.id)
    return out
