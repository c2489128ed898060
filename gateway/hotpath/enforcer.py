"""Budget and rate enforcement for the request path: one Redis script call per request.

`Enforcer.admit` checks, in ONE atomic Lua script call (EVALSHA), every budget and quota on the
request's chain (key -> agent -> member -> department -> workspace, from the workspace snapshot's
`budgets`), the throttle bands, the key's rate caps (RPM sliding window, TPM per minute) and the
agent loop breaker, and either reserves the request's worst case on every budget or refuses.
`settle` (exactly once per request id) swaps the reservation for the actual usage; `release` drops
it. Django-free: the only way back to Postgres is the injected `loader` (counter rebuild).

Counters (integers, one hash per budget per period, `core.rediskeys.budget_counter`): `spent` and
`reserved` in nano-USD for money budgets, requests or tokens for quotas; `init` is the epoch the
counter was seeded with from the ledger. A missing counter (new period, Redis flushed or
restarted) is never read as zero: the script reports it, the Enforcer rebuilds it from the ledger
and retries; with no loader it refuses (503).

Refusal rule for a hard-stop budget (limit L, spent S, reserved R, this call's worst case W > 0):
refuse when S + R >= L (at the cap) or S + R + W > L (the call could pass the cap). So settled
spend never exceeds L as long as actual cost <= W, and a call that reserves nothing (a zero-price
model under a money budget) is never blocked by it.

Reservations are also indexed per workspace (`<tag>:resv`, score = expiry): one never settled (a
gateway died mid-call) is dropped after the reservation TTL when a budget would otherwise refuse.
Ladder crossings and loops go to the workspace's alerts stream (`core.rediskeys`: one Redis
Cluster slot per workspace), consumed by `billing.alerts_drain`.
Concurrent admit/settle calls share pipelined round trips (`scripts.Batcher`).
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from core.money import usd_exact
from core.periods import PeriodCache, period_bounds
from core.rediskeys import usage_stream as usage_stream_of  # `usage_stream` names an argument
from gateway.hotpath import refusals
from gateway.hotpath.admission import Admission, AdmitRequest, CounterLoader, Handle, Settle
from gateway.hotpath.budgets import (
    DEFAULT_RPM_FLOOR,
    MONEY,
    Chain,
    admit_numbers,
    chain_for,
    frame_of,
    settle_call,
)
from gateway.hotpath.scripts import ADMIT, INIT, SETTLE, AnyRedis, Batcher

logger = logging.getLogger("alephant.enforcement")

DEFAULT_RESERVATION_TTL_S = 900.0
DEFAULT_LOOP_MAX_REPEATS = 8
DEFAULT_LOOP_WINDOW_S = 60
_COUNTERS_AT = 5  # keys[5:] are the chain's counters (after rl, tpm, loop, alerts, resv)
_HEADER = struct.Struct("<9d").pack  # the admit script's numbers (`lua/admit.lua`)


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class _AdmitCall:
    """One admit script call: its keys and args, and what the answer is read against."""

    keys: list[str]
    args: list
    settle: Settle  # `budgets.Frame.settle`
    reserves: tuple[int, int, int]  # `budgets.admit_numbers`
    rpm: int
    tpm: int
    loop_max: int
    loop_window: int
    subject: str


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
        self._batcher = Batcher(redis)
        self.clock = clock
        ttl = DEFAULT_RESERVATION_TTL_S if reservation_ttl_s is None else reservation_ttl_s
        self.reservation_ttl_ms = max(1, int(ttl * 1000))
        self.fail_open = fail_open
        self.loader = loader
        self.loop_max_repeats = (
            DEFAULT_LOOP_MAX_REPEATS if loop_max_repeats is None else loop_max_repeats
        )
        self.loop_window_s = DEFAULT_LOOP_WINDOW_S if loop_window_s is None else loop_window_s
        self.enabled = enabled
        self._periods = PeriodCache()

    @classmethod
    def from_config(cls, redis: AnyRedis, config: Any, *, loader: CounterLoader | None) -> Enforcer:
        """From the gateway's `Config` (read once from the environment)."""
        return cls(
            redis,
            fail_open=config.fail_open,
            enabled=config.enforcement,
            loader=loader,
            loop_max_repeats=config.loop_max_repeats,
            loop_window_s=config.loop_window_s,
            reservation_ttl_s=config.reservation_ttl_s,
        )

    # --- admit ----------------------------------------------------------------------------

    async def admit(self, req: AdmitRequest, workspace: dict, key: dict) -> Admission:
        if not self.enabled:
            return Admission(True, handle=Handle(req.workspace_id, req.request_id, []))
        now = self.clock()
        time_zone = workspace.get("time_zone") or "UTC"
        chain = chain_for(req, workspace, self._periods, time_zone, now)
        if chain.over_request_cap is not None:
            return refusals.request_cost_exceeded(chain.over_request_cap, req)
        call = self._admit_call(req, workspace, key, chain, now)
        result = await self._run_admit(req, call, chain, time_zone, now)
        if isinstance(result, Admission):
            return result
        return self._outcome(req, call, chain, result)

    def _admit_call(
        self, req: AdmitRequest, workspace: dict, key: dict, chain: Chain, now: float
    ) -> _AdmitCall:
        frame = chain.frame or frame_of(chain, req.workspace_id, req.key_id)
        tokens_estimate = max(0, int(req.estimated_input_tokens)) + max(
            0, int(req.max_output_tokens)
        )
        # The workspace floor, narrowed (never replaced) by the key's effective cap (the key's
        # own and its member's, gateway/snapshots.py): never "no cap" (a 0 or a missing floor
        # falls back to the default 100/min).
        floor = int(workspace.get("rpm_floor") or DEFAULT_RPM_FLOOR)
        rpm = min(int(key.get("rpm") or floor), floor)
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
        reserves = (max(0, int(req.reserve_nanos)), 1, tokens_estimate)  # `reserve_for`
        numbers, strings = admit_numbers(frame, reserves)
        keys = [
            frame.rate_key,  # the frame's chain shape is of one key
            f"{frame.tpm_prefix}{int(now // 60)}",
            f"{frame.tag}:loop:{subject}:{req.fingerprint}",
            *frame.keys,
        ]
        header = (len(chain.counted), int(rpm or 0), int(tpm), tokens_estimate, loop_max)
        enforce = 1 if settings.get("loop_breaker") else 0
        args: list = [
            req.request_id,
            _HEADER(*header, loop_window, enforce, self.reservation_ttl_ms, len(chain.windows)),
            numbers,
            frame.window_limits,
            req.workspace_id,
            subject,
            frame.cold,
            *strings,
        ]
        return _AdmitCall(
            keys, args, frame.settle, reserves, rpm, tpm, loop_max, loop_window, subject
        )

    async def _run_admit(
        self, req: AdmitRequest, call: _AdmitCall, chain: Chain, time_zone: str, now: float
    ) -> list | Admission:
        """The script call; missing counters are rebuilt from the ledger and the call retried."""
        for attempt in range(3):
            try:
                result = await self._batcher.call(ADMIT, call.keys, call.args)
            except (RedisError, OSError) as exc:
                return refusals.redis_down(req, exc, fail_open=self.fail_open)
            if _s(result[0]) != "missing" or attempt == 2:
                return result
            missing = [int(i) - 1 for i in result[1:]]
            try:
                await self._rebuild(
                    req,
                    [chain.counted[i] for i in missing],
                    [call.keys[_COUNTERS_AT + i] for i in missing],
                    time_zone,
                    now,
                )
            except (RedisError, OSError) as exc:
                return refusals.redis_down(req, exc, fail_open=self.fail_open)
            except Exception:
                # The ledger could not be read: never admit against a counter we could not
                # rebuild (a missing counter is not zero spend).
                logger.exception("enforcement: counter rebuild failed for %s", req.request_id)
                return refusals.counters_unavailable(
                    "Budget counters could not be rebuilt from the ledger; retry shortly.", 5
                )
        raise AssertionError("unreachable")

    def _outcome(
        self, req: AdmitRequest, call: _AdmitCall, chain: Chain, result: list
    ) -> Admission:
        code = _s(result[0])
        if code == "ok":
            return self._admitted(req, call, chain, result)
        if code == "budget":
            budget, _pkey, end = chain.counted[int(result[1]) - 1]
            spent, reserved, limit = int(result[2]), int(result[3]), int(result[4])
            return refusals.budget_exceeded(budget, end, spent, reserved, limit)
        if code == "throttle":
            return refusals.throttled(chain.counted[int(result[1]) - 1][0], int(result[2]))
        if code == "window":
            return refusals.window_full(chain.windows[int(result[1]) - 1], int(result[2]))
        if code in ("rate", "tpm"):
            return refusals.key_rate_limited(code, call.rpm, call.tpm, req.key_id, int(result[1]))
        if code == "loop":
            return refusals.loop_detected(int(result[1]), call.loop_window)
        # Still missing after rebuilds: fail closed rather than read a missing counter as zero.
        return refusals.counters_unavailable("Budget counters are unavailable; retry shortly.", 1)

    def _admitted(
        self, req: AdmitRequest, call: _AdmitCall, chain: Chain, result: list
    ) -> Admission:
        remaining, has_money, looped = int(result[1]), int(result[2]), int(result[3])
        try:
            epochs = list(map(bytes.decode, result[5:]))
        except TypeError:  # not all bytes (another client's replies)
            epochs = [_s(epoch) for epoch in result[5:]]
        if len(epochs) != len(call.settle.kinds):
            raise ValueError(f"admit answered {len(epochs)} epochs for {len(call.settle.kinds)}")
        handle = Handle(
            req.workspace_id,
            req.request_id,
            epochs,
            member=_s(result[4]),
            settle=call.settle,
            reserves=call.reserves,
        )
        headers = {}
        if has_money:
            headers["Alephant-Budget-Remaining-USD"] = usd_exact(max(0, remaining))
        # Log the first repeat past the limit, then at powers of two: a loop that keeps
        # going must not turn into one log line per request on the hot path.
        if looped and (looped == call.loop_max + 1 or looped & (looped - 1) == 0):
            logger.warning(
                "agent loop: %s repeated %s times (workspace %s)",
                call.subject,
                looped,
                req.workspace_id,
            )
        return Admission(True, headers=headers, handle=handle)

    async def _rebuild(
        self, req: AdmitRequest, missing: list, counter_keys: list[str], time_zone: str, now: float
    ) -> None:
        if self.loader is None:
            raise LookupError("no ledger loader: a missing counter cannot be rebuilt")
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
        await INIT(self.redis, counter_keys, args)

    async def settle(
        self,
        admission: Admission,
        *,
        cost_nanos: int,
        tokens: int,
        usage: Sequence[bytes] = (),
        usage_stream: str | None = None,
    ) -> bool:
        """Swap the reservation for the actual usage (once per request id).

        `usage`: the request's usage events, encoded (`gateway.hotpath.usage.encode`); they are
        appended to `usage_stream` (default: the workspace's shard, `core.rediskeys.usage_stream`)
        in the same script call, atomically with the counter change.
        Returns True when those events are in Redis; False means the caller must append them
        itself (no budget on the chain, so no script ran, or Redis failed)."""
        return await self._finish(
            admission,
            cost_nanos=max(0, int(cost_nanos)),
            tokens=max(0, int(tokens)),
            count=1,
            usage=usage,
            usage_stream=usage_stream,
        )

    async def release(
        self, admission: Admission, *, usage: Sequence[bytes] = (), usage_stream: str | None = None
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
        usage_stream: str | None,
    ) -> bool:
        handle = admission.handle
        if not isinstance(handle, Handle) or handle.done:
            return not usage
        handle.done = True
        if not handle.budgets:
            return not usage  # nothing to settle: no round trip of ours for the events either
        keys, args = settle_call(handle, cost_nanos=cost_nanos, count=count, tokens=tokens)
        if usage:
            keys.append(usage_stream or usage_stream_of(handle.workspace_id))
            args.extend(usage)
        try:
            await self._batcher.call(SETTLE, keys, args)
        except (RedisError, OSError) as exc:
            # The reservation stays until the counter expires or is rebuilt; the ledger
            # keeps the cost (the caller appends the events itself).
            logger.error("enforcement: settle of %s failed: %s", handle.request_id, exc)
            return False
        return True
