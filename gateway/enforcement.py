"""Budget and rate enforcement for the gateway's hot path: one Redis script per request.

`Enforcer.admit` checks, in ONE atomic Lua script call (EVALSHA), every budget and quota on the
request's chain (key -> agent -> member -> department -> workspace, from the workspace snapshot's
`budgets`), the throttle bands, the key's rate caps (RPM sliding window, TPM per minute) and the
agent loop breaker, and either reserves the request's worst case on every budget or refuses.
`settle` (exactly once per request id) swaps the reservation for the actual usage; `release` drops
it. Django-free: the only way back to Postgres is the injected `loader` (counter rebuild).

Counters (integers, one hash per budget per period, `alephant:{w<ws>}:b:<budget>:<period>`):
`spent` and `reserved` in nano-USD for money budgets, requests or tokens for quotas; `init` is the
epoch the counter was seeded with from the ledger. A missing counter (new period, Redis flushed
or restarted) is never read as zero: the script reports it, the Enforcer rebuilds it from the
ledger and retries.

Refusal rule for a hard-stop budget (limit L, spent S, reserved R, this call's worst case W > 0):
refuse when S + R >= L (at the cap) or S + R + W > L (the call could pass the cap). So settled
spend never exceeds L as long as actual cost <= W, and a call that reserves nothing (a zero-price
model under a money budget) is never blocked by it.

Reservations are also indexed per workspace (`alephant:{w<ws>}:resv`, score = expiry): one never
settled (a gateway died mid-call) is dropped after `ALEPHANT_RESERVATION_TTL_S` when a budget
would otherwise refuse. Ladder crossings and loops are signalled on the stream `alephant:alerts`
(consumed by `billing.alerts_drain`). Concurrent admit/settle calls share pipelined round trips
(`_Batcher`); `rpm` budgets are requests-per-minute caps on any scope, in the same script.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import math
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("alephant.enforcement")

NANOS_PER_USD = 1_000_000_000
ALERTS_STREAM = "alephant:alerts"
USAGE_STREAM = "alephant:usage"  # gateway.usage.STREAM
DEFAULT_RPM_FLOOR = 100
DEFAULT_LADDER = (50, 75, 90, 100)
SETTLED_TTL_S = 2 * 24 * 3600
CHAIN = ("key", "agent", "member", "department", "workspace")
MONEY, REQUESTS, TOKENS, REQUEST_COST, RPM = "usd", "requests", "tokens", "request_usd", "rpm"

# redis-py's asyncio client, or the request path's lean `RespClient` (same calls, same errors)
AnyRedis: TypeAlias = "aioredis.Redis | RespClient"

# loader(workspace_id, items) -> current totals, one int per item, from the ledger.
# item: {"budget_id", "metric", "scope_type", "scope_id", "model", "start", "end"} (aware datetimes)
CounterLoader = Callable[[int, list[dict]], Awaitable[list[int]]]


@dataclass
class AdmitRequest:
    request_id: str
    workspace_id: int
    key_id: int
    member_id: int | None
    department_id: int | None
    agent_id: int | None
    provider: str
    model: str
    estimated_input_tokens: int
    max_output_tokens: int
    reserve_nanos: int  # worst-case cost of this call, nano-USD
    fingerprint: str
    session_id: str | None


@dataclass
class Admission:
    allowed: bool
    status: int = 200  # 402 budget / 429 rate or throttle or loop / 503 redis down
    error_type: str | None = None  # budget_exceeded | rate_limit_exceeded | loop_detected | ...
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    handle: object | None = None  # opaque, passed back to settle/release
    details: dict | None = None  # machine-readable refusal facts (scope, budget, spent, ...)


@dataclass
class _Budgeted:
    key: str
    epoch: str
    reserve: int
    metric: str
    ladder: str
    limit: int
    budget_id: int
    period: str


@dataclass
class _Handle:
    workspace_id: int
    request_id: str
    budgets: list[_Budgeted]
    done: bool = False
    member: str = ""  # this request's entry in the workspace's reservation index


# --- periods ------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except Exception:  # an unknown zone must not take the gateway down
        return ZoneInfo("UTC")


def period_bounds(
    period: str, time_zone: str, now: float
) -> tuple[str, datetime | None, datetime | None]:
    """(period key, start, end) of the period holding `now` in the workspace's time zone."""
    if period == "lifetime":
        return "life", None, None
    tz = _zone(time_zone)
    local = datetime.fromtimestamp(now, tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
        key = f"d{start:%Y%m%d}"
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
        iso = start.isocalendar()
        key = f"w{iso.year}{iso.week:02d}"
    elif period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        key = f"m{start:%Y%m}"
    else:
        raise ValueError(f"unknown period {period!r}")
    # Wall-clock arithmetic across a DST change: re-resolve the local midnight in the zone.
    start = start.replace(tzinfo=None).replace(tzinfo=tz)
    end = end.replace(tzinfo=None).replace(tzinfo=tz)
    return key, start, end


class _PeriodCache:
    """Period bounds per (period, time zone), valid until the period ends."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[float, float, tuple]] = {}

    def get(
        self, period: str, time_zone: str, now: float
    ) -> tuple[str, datetime | None, datetime | None]:
        hit = self._cache.get((period, time_zone))
        if hit is not None and hit[0] <= now < hit[1]:
            return hit[2]
        bounds = period_bounds(period, time_zone, now)
        start = bounds[1].timestamp() if bounds[1] is not None else -math.inf
        end = bounds[2].timestamp() if bounds[2] is not None else math.inf
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[(period, time_zone)] = (start, end, bounds)
        return bounds


# --- helpers ------------------------------------------------------------------------------


def nanos_to_usd(nanos: int) -> str:
    return str((Decimal(int(nanos)) / NANOS_PER_USD).quantize(Decimal("0.000001"), ROUND_DOWN))


def _retry_after(ms: int | float) -> str:
    return str(max(1, math.ceil(float(ms) / 1000)))


def _model_matches(pattern: str | None, provider: str, model: str) -> bool:
    if not pattern:
        return True
    return fnmatch.fnmatchcase(model, pattern) or fnmatch.fnmatchcase(
        f"{provider}/{model}", pattern
    )


def _scope_ids(req: AdmitRequest) -> dict[str, int | None]:
    return {
        "key": req.key_id,
        "agent": req.agent_id,
        "member": req.member_id,
        "department": req.department_id,
        "workspace": req.workspace_id,
    }


def _index(workspace: dict) -> dict[tuple[str, int], list[dict]]:
    """Budgets of a workspace snapshot by scope, computed once per snapshot object."""
    index = workspace.get("_alephant_budget_index")
    if index is None:
        index = {}
        for budget in workspace.get("budgets") or ():
            scope = (budget["scope_type"], int(budget["scope_id"]))
            index.setdefault(scope, []).append(budget)
        workspace["_alephant_budget_index"] = index
    return index


def _ladder_arg(budget: dict) -> str:
    limit = int(budget["limit"])
    steps = budget.get("ladder") or DEFAULT_LADDER
    # threshold = ceil(limit * step / 100), in integers: no float near the cap.
    return ",".join(f"{int(s)}={-(-limit * int(s) // 100)}" for s in steps) or "-"


@dataclass(frozen=True)
class _Compiled:
    """What the scripts need of a budget, computed once per snapshot (not per request)."""

    metric: str
    limit: int
    budget_id: int
    ladder: str
    static: str  # "hard threshold throttle_rpm money budget_id" for the admit script


def _compiled(budget: dict) -> _Compiled:
    compiled = budget.get("_alephant_compiled")
    if compiled is None:
        metric = budget.get("metric", MONEY)
        limit = int(budget["limit"])
        throttle_at = budget.get("throttle_at")
        throttle_rpm = int(budget.get("throttle_rpm") or 0)
        threshold = (
            -1 if throttle_at is None or not throttle_rpm else -(-limit * int(throttle_at) // 100)
        )
        hard = 1 if budget.get("hard_stop", True) else 0
        money = 1 if metric == MONEY else 0
        compiled = _Compiled(
            metric=metric,
            limit=limit,
            budget_id=int(budget["id"]),
            ladder=_ladder_arg(budget),
            static=f"{hard} {threshold} {throttle_rpm} {money} {int(budget['id'])}",
        )
        budget["_alephant_compiled"] = compiled
    return compiled


def _load_script(name: str) -> str:
    return (Path(__file__).with_name("lua") / name).read_text()


class _Script:
    """EVALSHA with the script loaded once per Redis; reloaded on NOSCRIPT (Redis restarted)."""

    def __init__(self, source: str) -> None:
        self.source = source
        import hashlib

        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis' script id

    async def __call__(self, client: AnyRedis, keys: list[str], args: list) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


def _resolve(future: asyncio.Future, result: Any) -> None:
    if not future.done():  # the caller may have been cancelled (client went away)
        future.set_result(result)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class _Batcher:
    """Concurrent script calls share one round trip: while a batch is in flight, new calls
    queue and go together in the next pipeline (non-transactional: each script is atomic on its
    own). An idle caller is sent at once, so batching adds no latency; under load it saves the
    per-command client CPU (one send/recv for many), like the usage queue does for events."""

    def __init__(self, client: AnyRedis) -> None:
        self.client = client
        self.pending: list[tuple[_Script, list[str], list, asyncio.Future]] = []
        self.flushing = False
        self._task: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def call(self, script: _Script, keys: list[str], args: list) -> Any:
        loop = asyncio.get_running_loop()
        if self.flushing and (
            self._loop is not loop or (self._task is not None and self._task.done())
        ):
            # A flush that died with its event loop must not leave the batcher stuck.
            self.flushing, self.pending, self._task = False, [], None
        if not self.flushing:
            # Nothing in flight: this caller makes the round trip itself (no task, no future).
            self.flushing, self._loop, self._task = True, loop, None
            try:
                return await script(self.client, keys, args)
            finally:
                if self.pending:
                    self._task = loop.create_task(self._flush())
                else:
                    self.flushing = False
        future = loop.create_future()
        self.pending.append((script, keys, args, future))
        return await future

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                await self._run(batch, reload=True)
        finally:
            self.flushing = False

    async def _run(self, batch: list, *, reload: bool) -> None:
        if len(batch) == 1:
            script, keys, args, future = batch[0]
            try:
                _resolve(future, await script(self.client, keys, args))
            except BaseException as exc:
                _fail(future, exc)
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for script, keys, args, _future in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for *_rest, future in batch:
                _fail(future, exc)
            return
        retry = []
        for item, result in zip(batch, results, strict=True):
            future = item[3]
            if isinstance(result, NoScriptError) and reload:
                retry.append(item)  # the script never ran: safe to send again
            elif isinstance(result, BaseException):
                _fail(future, result)
            else:
                _resolve(future, result)
        if retry:
            try:
                for script in {id(item[0]): item[0] for item in retry}.values():
                    await self.client.script_load(script.source)
            except BaseException as exc:
                for *_rest, future in retry:
                    _fail(future, exc)
                return
            await self._run(retry, reload=False)


_ADMIT = _Script(_load_script("admit.lua"))
_SETTLE = _Script(_load_script("settle.lua"))
_INIT = _Script(_load_script("init.lua"))


async def ledger_loader(workspace_id: int, items: list[dict]) -> list[int]:
    """Default counter loader: sums the Postgres ledger in a worker thread (Django side)."""
    from billing.services.counters import counters_from_ledger_in_thread

    return await asyncio.to_thread(
        counters_from_ledger_in_thread, workspace_id=workspace_id, items=items
    )


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Enforcer:
    def __init__(
        self,
        redis: AnyRedis,
        *,
        fail_open: bool = False,
        loader: CounterLoader | None = None,
        loop_max_repeats: int | None = None,
        loop_window_s: int | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        reservation_ttl_s: float | None = None,
    ) -> None:
        self.redis = redis
        self._batcher = _Batcher(redis)
        self.clock = clock
        ttl = (
            reservation_ttl_s
            if reservation_ttl_s is not None
            else float(os.environ.get("ALEPHANT_RESERVATION_TTL_S") or 900)
        )
        self.reservation_ttl_ms = max(1, int(ttl * 1000))
        self.fail_open = fail_open
        self.loader = loader or ledger_loader
        self.loop_max_repeats = (
            loop_max_repeats
            if loop_max_repeats is not None
            else int(os.environ.get("ALEPHANT_LOOP_MAX_REPEATS") or 8)
        )
        self.loop_window_s = (
            loop_window_s
            if loop_window_s is not None
            else int(os.environ.get("ALEPHANT_LOOP_WINDOW_S") or 60)
        )
        self.enabled = enabled
        self._periods = _PeriodCache()

    @classmethod
    def from_env(cls, redis: AnyRedis, **kwargs) -> Enforcer:
        """`ALEPHANT_FAIL_OPEN`, `ALEPHANT_LOOP_MAX_REPEATS`, `ALEPHANT_LOOP_WINDOW_S`,
        `ALEPHANT_ENFORCEMENT` (0 turns enforcement off: benchmarks only)."""
        fail_open = (os.environ.get("ALEPHANT_FAIL_OPEN") or "").lower() in {
            "1",
            "true",
            "yes",
            "on",
        }
        enabled = (os.environ.get("ALEPHANT_ENFORCEMENT") or "1").lower() not in {
            "0",
            "false",
            "no",
            "off",
        }
        return cls(redis, fail_open=fail_open, enabled=enabled, **kwargs)

    # --- admit ----------------------------------------------------------------------------

    async def admit(self, req: AdmitRequest, workspace: dict, key: dict) -> Admission:
        if not self.enabled:
            return Admission(True, handle=_Handle(req.workspace_id, req.request_id, []))
        now = self.clock()
        ws = req.workspace_id
        tag = f"alephant:{{w{ws}}}"
        time_zone = workspace.get("time_zone") or "UTC"
        ids = _scope_ids(req)
        index = _index(workspace)

        chain: list[tuple[dict, str, datetime | None]] = []  # (budget, period key, period end)
        windows: list[dict] = []  # requests-per-minute caps on a scope (metric "rpm")
        for scope_type in CHAIN:
            scope_id = ids[scope_type]
            if scope_id is None:
                continue
            for budget in index.get((scope_type, int(scope_id)), ()):
                if not _model_matches(budget.get("model"), req.provider, req.model):
                    continue
                metric = budget.get("metric", MONEY)
                if metric == REQUEST_COST:
                    # Per-request cost cap: decided here, no counter needed.
                    if req.reserve_nanos > int(budget["limit"]):
                        return self._refuse_request_cost(budget, req)
                    continue
                if metric == RPM:
                    windows.append(budget)
                    continue
                pkey, _start, end = self._periods.get(budget["period"], time_zone, now)
                chain.append((budget, pkey, end))

        tokens_estimate = max(0, int(req.estimated_input_tokens)) + max(
            0, int(req.max_output_tokens)
        )
        # The key's own cap, else the workspace floor: never "no cap" (a 0 or a missing floor
        # falls back to the default 100/min).
        rpm = key.get("rpm") or workspace.get("rpm_floor") or DEFAULT_RPM_FLOOR
        tpm = key.get("tpm") or 0
        settings = workspace.get("settings") or {}
        loop_max = int(settings.get("loop_max_repeats") or self.loop_max_repeats)
        loop_window = int(settings.get("loop_window_s") or self.loop_window_s)
        subject = (
            f"a{req.agent_id}"
            if req.agent_id is not None
            else (f"s{req.session_id[:128]}" if req.session_id else "")
        )
        if not req.fingerprint or not subject:
            loop_max = 0
        minute = int(now // 60)

        keys = [
            f"{tag}:rl:k{req.key_id}",
            f"{tag}:tpm:k{req.key_id}:{minute}",
            f"{tag}:loop:{subject}:{req.fingerprint}",
            ALERTS_STREAM,
            f"{tag}:resv",
        ]
        args: list = [
            req.request_id,
            int(rpm or 0),
            int(tpm),
            tokens_estimate,
            loop_max,
            loop_window,
            1 if settings.get("loop_breaker") else 0,
            len(chain),
            ws,
            subject,
        ]
        throttle_keys = []
        reserves = []
        packed = []
        for budget, pkey, _end in chain:
            c = _compiled(budget)
            metric = c.metric
            reserve = (
                max(0, int(req.reserve_nanos))
                if metric == MONEY
                else 1
                if metric == REQUESTS
                else tokens_estimate
            )
            reserves.append(reserve)
            keys.append(f"{tag}:b:{c.budget_id}:{pkey}")
            throttle_keys.append(f"{tag}:th:{c.budget_id}")
            packed.append(f"{c.limit} {reserve} {c.static} {pkey} {c.ladder}")
        args.append(" ".join(packed))
        args.append(self.reservation_ttl_ms)
        keys += throttle_keys
        keys += [f"{tag}:rw:{w['id']}" for w in windows]
        args.append(" ".join(str(int(w["limit"])) for w in windows))

        for attempt in range(3):
            try:
                result = await self._batcher.call(_ADMIT, keys, args)
            except (RedisError, OSError) as exc:
                return self._redis_down(req, exc)
            code = _s(result[0])
            if code == "missing" and attempt < 2:
                missing = [int(i) - 1 for i in result[1:]]
                try:
                    await self._rebuild(
                        req,
                        [chain[i] for i in missing],
                        [keys[5 + i] for i in missing],
                        time_zone,
                        now,
                    )
                except (RedisError, OSError) as exc:
                    return self._redis_down(req, exc)
                except Exception:
                    # The ledger could not be read: never admit against a counter we could not
                    # rebuild (a missing counter is not zero spend).
                    logger.exception("enforcement: counter rebuild failed for %s", req.request_id)
                    return Admission(
                        False,
                        503,
                        "service_unavailable",
                        "Budget counters could not be rebuilt from the ledger; retry shortly.",
                        {"Retry-After": "5"},
                    )
                continue
            break
        if code == "ok":
            remaining, has_money, looped = int(result[1]), int(result[2]), int(result[3])
            member = _s(result[4])
            epochs = [_s(e) for e in result[5:]]
            handle = _Handle(
                ws,
                req.request_id,
                [
                    _Budgeted(
                        key=keys[5 + i],
                        epoch=epochs[i],
                        reserve=reserves[i],
                        metric=_compiled(budget).metric,
                        ladder=_compiled(budget).ladder,
                        limit=_compiled(budget).limit,
                        budget_id=_compiled(budget).budget_id,
                        period=pkey,
                    )
                    for i, (budget, pkey, _end) in enumerate(chain)
                ],
                member=member,
            )
            headers = {}
            if has_money:
                headers["Alephant-Budget-Remaining-USD"] = nanos_to_usd(max(0, remaining))
            # Log the first repeat past the limit, then at powers of two: a loop that keeps
            # going must not turn into one log line per request on the hot path.
            if looped and (looped == loop_max + 1 or looped & (looped - 1) == 0):
                logger.warning(
                    "agent loop: %s repeated %s times (workspace %s)", subject, looped, ws
                )
            return Admission(True, headers=headers, handle=handle)
        if code == "budget":
            i = int(result[1]) - 1
            budget, pkey, end = chain[i]
            return self._refuse_budget(budget, end, int(result[2]), int(result[3]), int(result[4]))
        if code == "throttle":
            budget = chain[int(result[1]) - 1][0]
            return Admission(
                False,
                429,
                "rate_limit_exceeded",
                f"{budget['scope_type']} budget {budget['id']} is past its throttle point "
                f"({budget.get('throttle_at')}%): limited to "
                f"{budget.get('throttle_rpm')} requests/minute.",
                {"Retry-After": _retry_after(int(result[2]))},
                details={
                    "reason": "throttle",
                    "budget_id": budget["id"],
                    "scope_type": budget["scope_type"],
                    "scope_id": budget["scope_id"],
                },
            )
        if code == "window":
            budget = windows[int(result[1]) - 1]
            return Admission(
                False,
                429,
                "rate_limit_exceeded",
                f"Rate limit of {budget['limit']} requests/minute for "
                f"{budget['scope_type']} {budget['scope_id']} reached (budget {budget['id']}).",
                {"Retry-After": _retry_after(int(result[2]))},
                details={
                    "reason": "rate",
                    "budget_id": budget["id"],
                    "scope_type": budget["scope_type"],
                    "scope_id": budget["scope_id"],
                },
            )
        if code in ("rate", "tpm"):
            what = f"{rpm} requests/minute" if code == "rate" else f"{tpm} tokens/minute"
            return Admission(
                False,
                429,
                "rate_limit_exceeded",
                f"Rate limit of {what} for this key reached.",
                {"Retry-After": _retry_after(int(result[1]))},
                details={"reason": code, "scope_type": "key", "scope_id": req.key_id},
            )
        if code == "loop":
            return Admission(
                False,
                429,
                "loop_detected",
                f"Agent loop detected: the same request was sent {int(result[1])} times within "
                f"{loop_window} s. Change the request or wait.",
                {"Retry-After": str(loop_window)},
                details={"reason": "loop", "count": int(result[1])},
            )
        # Still missing after rebuilds: fail closed rather than read a missing counter as zero.
        return Admission(
            False,
            503,
            "service_unavailable",
            "Budget counters are unavailable; retry shortly.",
            {"Retry-After": "1"},
        )

    async def _rebuild(
        self, req: AdmitRequest, missing: list, counter_keys: list[str], time_zone: str, now: float
    ) -> None:
        items = []
        for budget, _pkey, _end in missing:
            _key, start, end = period_bounds(budget["period"], time_zone, now)
            items.append(
                {
                    "budget_id": int(budget["id"]),
                    "metric": budget.get("metric", MONEY),
                    "scope_type": budget["scope_type"],
                    "scope_id": int(budget["scope_id"]),
                    "model": budget.get("model"),
                    "start": start,
                    "end": end,
                }
            )
        totals = await self.loader(req.workspace_id, items)
        args: list = []
        for item, total in zip(items, totals, strict=True):
            end = item["end"]
            # Keep a closed period's counter a while after it ends (late settles, dashboards).
            ttl = 0 if end is None else max(60, int(end.timestamp() - now) + 8 * 24 * 3600)
            args += [int(total), ttl, secrets.token_hex(6)]
        await _INIT(self.redis, counter_keys, args)

    def _refuse_budget(
        self, budget: dict, end: datetime | None, spent: int, reserved: int, limit: int
    ) -> Admission:
        money = budget.get("metric", MONEY) == MONEY
        fmt = nanos_to_usd if money else str
        unit = "USD" if money else budget.get("metric")
        resets = end.isoformat() if end is not None else None
        message = (
            f"Budget exceeded: {budget['scope_type']} {budget['scope_id']} budget {budget['id']} "
            f"({budget['period']}) has {fmt(spent)} {unit} spent"
            + (f" and {fmt(reserved)} in flight" if reserved else "")
            + f" of {fmt(limit)} {unit}. "
            + (f"Resets at {resets}." if resets else "This budget does not reset.")
        )
        details = {
            "scope_type": budget["scope_type"],
            "scope_id": budget["scope_id"],
            "budget_id": budget["id"],
            "metric": budget.get("metric", MONEY),
            "period": budget["period"],
            "spent": fmt(spent),
            "reserved": fmt(reserved),
            "limit": fmt(limit),
            "resets_at": resets,
        }
        headers = (
            {"Alephant-Budget-Remaining-USD": nanos_to_usd(max(0, limit - spent - reserved))}
            if money
            else {}
        )
        return Admission(False, 402, "budget_exceeded", message, headers, details=details)

    def _refuse_request_cost(self, budget: dict, req: AdmitRequest) -> Admission:
        limit = int(budget["limit"])
        message = (
            f"Budget exceeded: this call could cost up to {nanos_to_usd(req.reserve_nanos)} USD, "
            f"over the per-request cap of {nanos_to_usd(limit)} USD on "
            f"{budget['scope_type']} {budget['scope_id']} "
            f"(budget {budget['id']}). Lower max_tokens or the prompt size."
        )
        details = {
            "scope_type": budget["scope_type"],
            "scope_id": budget["scope_id"],
            "budget_id": budget["id"],
            "metric": REQUEST_COST,
            "period": "request",
            "spent": nanos_to_usd(req.reserve_nanos),
            "limit": nanos_to_usd(limit),
            "resets_at": None,
        }
        return Admission(False, 402, "budget_exceeded", message, details=details)

    def _redis_down(self, req: AdmitRequest, exc: BaseException) -> Admission:
        if self.fail_open:
            logger.error(
                "ALERT enforcement fail-open: Redis unreachable (%s); admitting request %s "
                "of workspace %s without budget or rate checks",
                exc,
                req.request_id,
                req.workspace_id,
            )
            return Admission(
                True,
                headers={"Alephant-Enforcement": "fail-open"},
                handle=_Handle(req.workspace_id, req.request_id, []),
            )
        logger.error(
            "enforcement: Redis unreachable (%s); refusing request %s", exc, req.request_id
        )
        return Admission(
            False,
            503,
            "service_unavailable",
            "Budget enforcement is unavailable (counter store unreachable); retry shortly.",
            {"Retry-After": "5"},
        )

    # --- settle / release -------------------------------------------------------------------

    async def settle(
        self,
        admission: Admission,
        *,
        cost_nanos: int,
        tokens: int,
        usage: Sequence[bytes] = (),
        usage_stream: str = USAGE_STREAM,
    ) -> bool:
        """Swap the reservation for the actual usage (once per request id).

        `usage`: the request's usage events, encoded (`gateway.usage.encode`); they are appended
        to `usage_stream` in the same script call, atomically with the counter change. Returns
        True when those events are in Redis; False means the caller must append them itself
        (no budget on the chain, so no script ran, or Redis failed)."""
        return await self._finish(
            admission,
            cost_nanos=max(0, int(cost_nanos)),
            tokens=max(0, int(tokens)),
            count=1,
            usage=usage,
            usage_stream=usage_stream,
        )

    async def release(
        self, admission: Admission, *, usage: Sequence[bytes] = (), usage_stream: str = USAGE_STREAM
    ) -> bool:
        """Drop the reservation; `usage` and the result as for `settle`."""
        return await self._finish(
            admission, cost_nanos=0, tokens=0, count=0, usage=usage, usage_stream=usage_stream
        )

    async def _finish(
        self,
        admission: Admission,
        *,
        cost_nanos: int,
        tokens: int,
        count: int,
        usage: Sequence[bytes],
        usage_stream: str,
    ) -> bool:
        handle = admission.handle
        if not isinstance(handle, _Handle) or handle.done:
            return not usage
        handle.done = True
        if not handle.budgets:
            return not usage  # nothing to settle: no round trip of ours for the events either
        tag = f"alephant:{{w{handle.workspace_id}}}"
        keys = [f"{tag}:settled:{handle.request_id}", ALERTS_STREAM, f"{tag}:resv"]
        packed = []
        for b in handle.budgets:
            actual = cost_nanos if b.metric == MONEY else count if b.metric == REQUESTS else tokens
            keys.append(b.key)
            packed.append(
                f"{b.epoch} {b.reserve} {actual} {b.limit} {b.ladder} {b.budget_id} {b.period}"
            )
        args: list = [
            SETTLED_TTL_S,
            len(handle.budgets),
            handle.workspace_id,
            handle.request_id,
            " ".join(packed),
            handle.member,
        ]
        if usage:
            keys.append(usage_stream)
            args.extend(usage)
        try:
            await self._batcher.call(_SETTLE, keys, args)
        except (RedisError, OSError) as exc:
            # The reservation stays until the counter expires or is rebuilt; the ledger
            # keeps the cost (the caller appends the events itself).
            logger.error("enforcement: settle of %s failed: %s", handle.request_id, exc)
            return False
        return True


# --- a lean Redis client for the request path -----------------------------------------------


class _Incomplete(Exception):
    pass


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from `buf` at `pos` -> (value, next pos); errors come back as exception
    instances (as redis-py's pipelines return them); `_Incomplete` when more bytes are needed."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 58:  # ':'
        return int(line), pos
    if kind == 36:  # '$'
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == 42:  # '*'
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 43:  # '+'
        return line, pos
    if kind == 45:  # '-'
        message = line.decode("utf-8", "replace")
        if message.startswith("NOSCRIPT"):
            return NoScriptError(message), pos
        return ResponseError(message), pos
    raise RedisConnectionError(f"unreadable reply from Redis: {bytes(buf[pos - 64 : pos])!r}")


def _pack(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        elif not isinstance(arg, bytes | bytearray | memoryview):
            arg = str(arg).encode()
        out.append(b"$%d\r\n" % len(arg))
        out.append(arg)
        out.append(b"\r\n")
    return b"".join(out)


class _RespProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future] = deque()
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        try:
            while self.waiters and pos < len(self.buf):
                value, pos_next = _parse(self.buf, pos)
                pos = pos_next
                future = self.waiters.popleft()
                if not future.done():  # a cancelled or timed-out caller: its reply is dropped
                    future.set_result(value)
        except _Incomplete:
            pass
        except Exception as exc:  # a reply we can't read: this connection is done
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()
        del self.buf[:pos]

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost ({exc or 'closed'})"))


class _Pipeline:
    def __init__(self, client: RespClient) -> None:
        self.client = client
        self.commands: list[tuple] = []

    def evalsha(self, *args: Any) -> _Pipeline:
        self.commands.append(("EVALSHA", *args))
        return self

    def xadd(self, stream: str, fields: dict) -> _Pipeline:
        self.commands.append(("XADD", stream, "*", *(x for kv in fields.items() for x in kv)))
        return self

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands, self.commands = self.commands, []
        results = await self.client.execute_many(commands)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


class RespClient:
    """The few commands the request path sends per call (EVALSHA, XADD, SCRIPT LOAD), on ONE
    pipelined connection per process: no pool checkout, no retry wrapper, one timer per
    command, replies matched in order. Roughly a third of redis-py's client CPU per command,
    which at concurrency 1 is most of what enforcement and the usage event cost. The API is
    the subset of `redis.asyncio.Redis` that `Enforcer` and `UsageQueue` use; errors are
    redis-py's (`ConnectionError`, `TimeoutError`, `ResponseError`, `NoScriptError`), so
    callers treat them the same (Redis down -> 503). A timed-out or broken connection is
    dropped and the next call reconnects."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 1.0,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._proto: _RespProtocol | None = None
        self._connecting: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RespClient:
        from urllib.parse import unquote, urlparse

        parsed = urlparse(url)
        if parsed.scheme not in ("redis", ""):
            raise ValueError(f"RespClient speaks plain redis:// only, not {parsed.scheme}://")
        path = (parsed.path or "/").strip("/")
        return cls(
            parsed.hostname or "127.0.0.1",
            parsed.port or 6379,
            int(path) if path else 0,
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            **kwargs,
        )

    async def _connection(self) -> _RespProtocol:
        proto = self._proto
        loop = asyncio.get_running_loop()
        if proto is not None and not proto.closed and self._loop is loop:
            return proto
        if self._connecting is not None and self._loop is loop:
            return await asyncio.shield(self._connecting)
        self._loop = loop
        self._connecting = loop.create_future()
        try:
            proto = await self._open(loop)
        except BaseException as exc:
            self._connecting.set_exception(exc)
            self._connecting.exception()  # retrieved: waiters re-raise it themselves
            self._connecting = None
            raise
        self._connecting.set_result(proto)
        self._connecting = None
        self._proto = proto
        return proto

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _RespProtocol:
        try:
            _transport, proto = await asyncio.wait_for(
                loop.create_connection(_RespProtocol, self.host, self.port),
                self.connect_timeout_s,
            )
        except TimeoutError:
            raise RedisTimeoutError("timed out connecting to Redis") from None
        setup: list[tuple] = []
        if self.password:
            setup.append(
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
        if self.db:
            setup.append(("SELECT", self.db))
        if setup:
            for result in await self._send(proto, setup):
                if isinstance(result, Exception):
                    if proto.transport is not None:
                        proto.transport.close()
                    raise result
        return proto

    async def _send(self, proto: _RespProtocol, commands: list[tuple]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiters.extend(futures)
        assert proto.transport is not None
        proto.transport.write(b"".join(_pack(c) for c in commands))
        timer = loop.call_later(self.timeout_s, self._expire, proto, futures[-1])
        try:
            return [await f for f in futures]
        finally:
            timer.cancel()

    @staticmethod
    def _expire(proto: _RespProtocol, future: asyncio.Future) -> None:
        if not future.done():
            # Redis did not answer in time: fail everything on this connection, drop it.
            proto._fail(RedisTimeoutError("Redis did not answer in time"))
            if proto.transport is not None:
                proto.transport.close()

    async def execute_many(self, commands: list[tuple]) -> list[Any]:
        if not commands:
            return []
        return await self._send(await self._connection(), commands)

    async def execute_command(self, *args: Any) -> Any:
        proto = self._proto
        if proto is None or proto.closed or self._loop is not asyncio.get_running_loop():
            proto = await self._connection()
        [result] = await self._send(proto, [args])
        if isinstance(result, Exception):
            raise result
        return result

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return await self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def script_load(self, source: str) -> Any:
        return await self.execute_command("SCRIPT", "LOAD", source)

    async def xadd(self, stream: str, fields: dict) -> Any:
        return await self.execute_command(
            "XADD", stream, "*", *(x for kv in fields.items() for x in kv)
        )

    def pipeline(self, transaction: bool = False) -> _Pipeline:
        if transaction:
            raise ValueError("RespClient pipelines are not transactions")
        return _Pipeline(self)

    async def aclose(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
