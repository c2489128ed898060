"""Budgets of a workspace snapshot, compiled once per snapshot into what the scripts need.

A request's chain is key -> agent -> member -> department -> workspace; each scope may hold
several budgets. Per-request cost caps are decided here (no counter); `rpm` budgets become
sliding windows; every other budget becomes one counter for the current period.
"""

from __future__ import annotations

import fnmatch
import math
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from core.periods import PeriodCache
from core.rediskeys import alerts_stream, budget_counter, workspace_tag
from gateway.hotpath.admission import SETTLED_TTL_S as SETTLED_TTL_S
from gateway.hotpath.admission import AdmitRequest, Settle, pack_double
from gateway.hotpath.admission import settle_call as settle_call

DEFAULT_RPM_FLOOR = 100
DEFAULT_LADDER = (50, 75, 90, 100)
CHAIN = ("key", "agent", "member", "department", "workspace")
MONEY, REQUESTS, TOKENS, REQUEST_COST, RPM = "usd", "requests", "tokens", "request_usd", "rpm"
PLANS_PER_SNAPSHOT = 256  # chain shapes (scopes, provider, model) remembered per snapshot
_PLANS = "_alephant_chain_plans"
MONEY_KIND, REQUESTS_KIND, TOKENS_KIND = 0, 1, 2  # `Settle.kinds`: what a counter counts
_KINDS = {MONEY: MONEY_KIND, REQUESTS: REQUESTS_KIND}


def model_matches(pattern: str | None, provider: str, model: str) -> bool:
    if not pattern:
        return True
    return fnmatch.fnmatchcase(model, pattern) or fnmatch.fnmatchcase(
        f"{provider}/{model}", pattern
    )


def scope_ids(req: AdmitRequest) -> dict[str, int | None]:
    return {
        "key": req.key_id,
        "agent": req.agent_id,
        "member": req.member_id,
        "department": req.department_id,
        "workspace": req.workspace_id,
    }


def scope_chain(req: AdmitRequest) -> list[tuple[str, int | str]]:
    """(scope type, id) of every scope the call counts on, key first. The department is the
    member's own whichever agent the call goes through; an agent placed in another department
    charges that one too (both caps hold; README "Budgets")."""
    ids = scope_ids(req)
    chain: list[tuple[str, int | str]] = []
    for scope_type in CHAIN:
        scope_id = ids[scope_type]
        if scope_id is not None:
            chain.append((scope_type, int(scope_id)))
    extra = req.agent_department_id
    if extra is not None and extra != ids["department"]:
        chain.insert(len(chain) - 1, ("department", int(extra)))  # before the workspace
    for name, value in (req.properties or {}).items():
        chain.insert(len(chain) - 1, ("property", f"{name}={value}"))
        if name == "customer":
            chain.insert(len(chain) - 1, ("customer", value))
    return chain


def budget_index(workspace: dict) -> dict[tuple[str, int | str], list[dict]]:
    """Budgets of a workspace snapshot by scope, computed once per snapshot object."""
    index = workspace.get("_alephant_budget_index")
    if index is None:
        index = {}
        for budget in workspace.get("budgets") or ():
            # Property/customer budgets are found by the value the call carries (`scope_key`).
            scope = (budget["scope_type"], budget.get("scope_key") or int(budget["scope_id"]))
            index.setdefault(scope, []).append(budget)
        workspace["_alephant_budget_index"] = index
    return index


def effective(budget: dict, now: float) -> dict:
    """The budget with only the approved temporary increases still running (`increases`:
    [[until epoch s, nano-USD]] over `base_limit`): each lapses at its `until` here, on its own,
    not when Django next republishes. One variant dict per distinct limit, cached on the budget
    (so `compiled` stays once per snapshot and limit)."""
    increases = budget.get("increases")
    if not increases:
        return budget
    limit = int(budget["base_limit"]) + sum(int(n) for until, n in increases if until > now)
    if limit == int(budget["limit"]):
        return budget
    variants = budget.setdefault("_alephant_variants", {})
    found = variants.get(limit)
    if found is None:
        found = {k: v for k, v in budget.items() if not k.startswith("_alephant")}
        found["limit"] = limit
        variants[limit] = found
    return found


def _ladder(budget: dict) -> list[tuple[int, int]]:
    """(step %, threshold) pairs: threshold = ceil(limit * step / 100), in integers (no float
    near the cap)."""
    limit = int(budget["limit"])
    steps = budget.get("ladder") or DEFAULT_LADDER
    return [(int(s), -(-limit * int(s) // 100)) for s in steps]


class PeriodStrings(NamedTuple):
    """A budget's strings for one period key, made once per snapshot and period."""

    counter_key: str
    relative_key: str  # the counter key without the workspace tag (the reservation member's)
    admit_cold: str  # the admit script's words: budget id, period key, ladder
    settle_cold: str  # the settle script's words: budget id, period key, limit, step labels


@dataclass(frozen=True)
class Compiled:
    """What the scripts need of a budget, computed once per snapshot (not per request): the
    numbers packed as the scripts read them (little-endian doubles, `lua/admit.lua`)."""

    metric: str
    limit: int
    budget_id: int
    admit_static: bytes  # '<d' x 5: limit, hard, throttle threshold, throttle rpm, money
    admit_cold: tuple[str, str]  # "<budget id> " and " <ladder>" around the period key
    settle_ladder: bytes  # '<d' x (1 + k): k steps, their thresholds
    settle_cold: tuple[str, str]  # "<budget id> " and " <limit> <step labels>"
    counter_prefix: str  # the counter key without its period key
    relative_prefix: str  # the same without the workspace tag (the reservation member's)
    throttle_key: str
    throttled: bool  # has a throttle band (the admit script gets its window's key)
    periods: dict[str, PeriodStrings] = field(default_factory=dict, compare=False)

    def strings(self, pkey: str) -> PeriodStrings:
        found = self.periods.get(pkey)
        if found is None:
            if len(self.periods) > 16:  # a long-lived snapshot across many periods
                self.periods.clear()
            found = self.periods[pkey] = PeriodStrings(
                self.counter_prefix + pkey,
                self.relative_prefix + pkey,
                self.admit_cold[0] + pkey + self.admit_cold[1],
                self.settle_cold[0] + pkey + self.settle_cold[1],
            )
        return found


def compiled(budget: dict, workspace_id: int) -> Compiled:
    """Cached on the budget dict, which belongs to one workspace snapshot."""
    found = budget.get("_alephant_compiled")
    if found is None:
        metric = budget.get("metric", MONEY)
        limit = int(budget["limit"])
        throttle_at = budget.get("throttle_at")
        throttle_rpm = int(budget.get("throttle_rpm") or 0)
        threshold = (
            -1 if throttle_at is None or not throttle_rpm else -(-limit * int(throttle_at) // 100)
        )
        hard = 1 if budget.get("hard_stop", True) else 0
        money = 1 if metric == MONEY else 0
        budget_id = int(budget["id"])
        ladder = _ladder(budget)
        ladder_arg = ",".join(f"{s}={th}" for s, th in ladder) or "-"
        prefix = budget_counter(workspace_id, budget_id, "")
        found = Compiled(
            metric=metric,
            limit=limit,
            budget_id=budget_id,
            admit_static=struct.pack("<5d", limit, hard, threshold, throttle_rpm, money),
            admit_cold=(f"{budget_id} ", f" {ladder_arg}"),
            settle_ladder=struct.pack(f"<{1 + len(ladder)}d", len(ladder), *(t for _, t in ladder)),
            settle_cold=(f"{budget_id} ", " ".join(["", str(limit), *(str(s) for s, _ in ladder)])),
            counter_prefix=prefix,
            relative_prefix=prefix[len(workspace_tag(workspace_id)) :],
            throttle_key=f"{workspace_tag(workspace_id)}:th:{budget_id}",
            throttled=threshold >= 0 and throttle_rpm > 0,
        )
        budget["_alephant_compiled"] = found
    return found


@dataclass
class Chain:
    """The budgets one request is checked against."""

    counted: list[tuple[dict, str, datetime | None]] = field(default_factory=list)
    """(budget, period key, period end) for every budget with a counter."""
    windows: list[dict] = field(default_factory=list)
    """requests-per-minute caps on a scope (metric "rpm")."""
    over_request_cap: dict | None = None
    """A per-request cost cap this call's worst case exceeds (refused without a counter)."""
    frame: Frame | None = field(default=None, compare=False, repr=False)
    """What the scripts need of these budgets, made once (`frame_of`); shared by the calls."""


def _chain_uncached(
    req: AdmitRequest, workspace: dict, periods: PeriodCache, time_zone: str, now: float
) -> Chain:
    chain = Chain()
    index = budget_index(workspace)
    for scope in scope_chain(req):
        for budget in index.get(scope, ()):
            if not model_matches(budget.get("model"), req.provider, req.model):
                continue
            budget = effective(budget, now)
            metric = budget.get("metric", MONEY)
            if metric == REQUEST_COST:
                # Per-request cost cap: decided here, no counter needed.
                if req.reserve_nanos > int(budget["limit"]):
                    chain.over_request_cap = budget
                    return chain
                continue
            if metric == RPM:
                chain.windows.append(budget)
                continue
            pkey, _start, end = periods.get(budget["period"], time_zone, now)
            chain.counted.append((budget, pkey, end))
    return chain


def chain_for(
    req: AdmitRequest, workspace: dict, periods: PeriodCache, time_zone: str, now: float
) -> Chain:
    """The request's chain, with its `frame`. The budgets a chain shape (scopes, provider,
    model) matches are found once per snapshot; their chain and frame are then reused while
    `now` stays inside every counter's period and no temporary increase starts or lapses."""
    props = req.properties
    shape = (
        req.key_id,
        req.agent_id,
        req.member_id,
        req.department_id,
        req.workspace_id,
        req.agent_department_id,
        tuple(props.items()) if props else None,
        req.provider,
        req.model,
    )
    plans = workspace.get(_PLANS)
    if plans is None:
        plans = workspace[_PLANS] = {}
    plan = plans.get(shape)
    if plan is None:
        if len(plans) >= PLANS_PER_SNAPSHOT:  # a long-lived snapshot must not grow unbounded
            plans.clear()
        index = budget_index(workspace)
        plan = plans[shape] = _Plan(
            [
                budget
                for scope in scope_chain(req)
                for budget in index.get(scope, ())
                if model_matches(budget.get("model"), req.provider, req.model)
            ]
        )
    frame = plan.frame
    if frame is None or not (frame.lo <= now < frame.hi) or frame.time_zone != time_zone:
        frame = plan.frame = _framed(plan.budgets, req, periods, time_zone, now)
    for limit in frame.caps:
        if req.reserve_nanos > limit:  # refused: the chain as it stands at that cap
            return _chain_uncached(req, workspace, periods, time_zone, now)
    return frame.chain


@dataclass(slots=True)
class _Plan:
    budgets: list[dict]  # the chain shape's budgets after model filtering, in chain order
    frame: Frame | None = None


def _framed(
    budgets: list[dict], req: AdmitRequest, periods: PeriodCache, time_zone: str, now: float
) -> Frame:
    """The chain of `budgets` at `now` and the interval [lo, hi) around `now` it holds for."""
    lo, hi = -math.inf, math.inf
    chain = Chain()
    caps: list[int] = []
    for raw in budgets:
        for until, _nanos in raw.get("increases") or ():
            if until > now:  # `effective`: running while until > now
                hi = min(hi, until)
            else:
                lo = max(lo, until)
        budget = effective(raw, now)
        metric = budget.get("metric", MONEY)
        if metric == REQUEST_COST:
            caps.append(int(budget["limit"]))
        elif metric == RPM:
            chain.windows.append(budget)
        else:
            pkey, start, end = periods.get(budget["period"], time_zone, now)
            if start is not None:
                lo = max(lo, start.timestamp())
            if end is not None:
                hi = min(hi, end.timestamp())
            chain.counted.append((budget, pkey, end))
    frame = frame_of(chain, req.workspace_id, req.key_id)
    frame.lo, frame.hi, frame.time_zone, frame.caps = lo, hi, time_zone, tuple(caps)
    chain.frame = frame
    return frame


@dataclass(slots=True)
class Frame:
    """Everything of a chain the admit and settle scripts receive that does not depend on the
    call: its keys, its packed numbers but the reserves, its refusal words."""

    chain: Chain
    keys: list[str]  # alerts, reservations, the counters, the throttle windows, the rpm windows
    statics: list[bytes]  # b"", then each counter's `Compiled.admit_static` (its reserve between)
    window_limits: bytes
    cold: str  # words read only on a refusal
    strings: list[str]  # per counter: its reserve as a decimal (a slot), its relative key
    settle: Settle
    tag: str  # the workspace's key tag
    rate_key: str = ""  # the key's rpm window and tpm counter (`chain_for`: one key a frame)
    tpm_prefix: str = ""
    lo: float = -math.inf
    hi: float = math.inf
    time_zone: str = ""
    caps: tuple[int, ...] = ()


def frame_of(chain: Chain, workspace_id: int, key_id: int) -> Frame:
    kinds: list[int] = []
    counters: list[str] = []
    throttles: list[str] = []
    cold: list[str] = []
    strings: list[str] = []
    settle_cold: list[str] = []
    statics, ladders = [b""], [b""]
    for budget, pkey, _end in chain.counted:
        c = compiled(budget, workspace_id)
        period = c.strings(pkey)
        kinds.append(_KINDS.get(c.metric, TOKENS_KIND))
        counters.append(period.counter_key)
        if c.throttled:
            throttles.append(c.throttle_key)
        statics.append(c.admit_static)
        cold.append(period.admit_cold)
        strings += ("", period.relative_key)
        ladders.append(c.settle_ladder)
        settle_cold.append(period.settle_cold)
    tag = workspace_tag(workspace_id)
    uniform = kinds[0] if kinds and len(set(kinds)) == 1 else -1
    settle = Settle(
        f"{tag}:settled:",
        [alerts_stream(workspace_id), f"{tag}:resv", *counters],
        pack_double(len(counters)),
        ladders,
        " ".join(settle_cold),
        tuple(kinds),
        uniform,
    )
    windows = [f"{tag}:rw:{w['id']}" for w in chain.windows]
    return Frame(
        chain,
        [*settle.keys[:2], *counters, *throttles, *windows],
        statics,
        b"".join([pack_double(int(w["limit"])) for w in chain.windows]),
        " ".join(cold),
        strings,
        settle,
        tag,
        f"{tag}:rl:k{key_id}",
        f"{tag}:tpm:k{key_id}:",
    )


def admit_numbers(frame: Frame, reserves: tuple[int, int, int]) -> tuple[bytes, list[str]]:
    """The chain's packed numbers and strings for one call, `reserves` being what it holds on a
    money, a requests and a tokens counter (`reserve_for`)."""
    kind = frame.settle.uniform
    strings = frame.strings.copy()
    if kind >= 0:  # every counter counts the same: one reserve
        reserve = reserves[kind]
        strings[0::2] = [str(reserve)] * len(frame.settle.kinds)
        return pack_double(reserve).join(frame.statics), strings
    kinds = frame.settle.kinds
    numbers = [b""] * (2 * len(kinds))
    packed = [pack_double(r) for r in reserves]
    decimals = [str(r) for r in reserves]
    numbers[0::2] = [packed[k] for k in kinds]
    numbers[1::2] = frame.statics[1:]
    strings[0::2] = [decimals[k] for k in kinds]
    return b"".join(numbers), strings


def reserve_for(metric: str, req: AdmitRequest, tokens_estimate: int) -> int:
    """What one call holds on a counter of this metric until it settles."""
    if metric == MONEY:
        return max(0, int(req.reserve_nanos))
    return 1 if metric == REQUESTS else tokens_estimate
