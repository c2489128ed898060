"""Budgets of a workspace snapshot, compiled once per snapshot into what the scripts need.

A request's chain is key -> agent -> member -> department -> workspace; each scope may hold
several budgets. Per-request cost caps are decided here (no counter); `rpm` budgets become
sliding windows; every other budget becomes one counter for the current period.
"""

from __future__ import annotations

import fnmatch
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from core.periods import PeriodCache
from core.rediskeys import alerts_stream, budget_counter, workspace_tag
from gateway.hotpath.admission import AdmitRequest, Handle

DEFAULT_RPM_FLOOR = 100
DEFAULT_LADDER = (50, 75, 90, 100)
CHAIN = ("key", "agent", "member", "department", "workspace")
MONEY, REQUESTS, TOKENS, REQUEST_COST, RPM = "usd", "requests", "tokens", "request_usd", "rpm"
SETTLED_TTL_S = 2 * 24 * 3600
pack_double = struct.Struct("<d").pack  # the scripts read their numbers as little-endian doubles


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


def chain_for(
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


def reserve_for(metric: str, req: AdmitRequest, tokens_estimate: int) -> int:
    """What one call holds on a counter of this metric until it settles."""
    if metric == MONEY:
        return max(0, int(req.reserve_nanos))
    return 1 if metric == REQUESTS else tokens_estimate


def settle_call(
    handle: Handle, *, cost_nanos: int, count: int, tokens: int
) -> tuple[list[str], list]:
    """The settle script's keys and arguments (`lua/settle.lua`), before the usage events."""
    tag = workspace_tag(handle.workspace_id)
    keys = [f"{tag}:settled:{handle.request_id}", alerts_stream(handle.workspace_id), f"{tag}:resv"]
    numbers, cold = [pack_double(len(handle.budgets))], []
    per_budget: list[str] = []
    actuals = {MONEY: cost_nanos, REQUESTS: count}
    packed: dict[int, tuple[bytes, str]] = {}  # actual -> (double, decimal or "")
    for b in handle.budgets:
        actual = actuals.get(b.metric, tokens)
        found = packed.get(actual)
        if found is None:
            found = packed[actual] = (pack_double(actual), str(actual) if actual > 0 else "")
        keys.append(b.key)
        numbers += (found[0], b.settle_ladder)
        cold.append(b.settle_cold)
        per_budget += (b.epoch, b.unreserve, found[1])
    args = [SETTLED_TTL_S, handle.workspace_id, handle.request_id, handle.member]
    return keys, [*args, b"".join(numbers), " ".join(cold), *per_budget]


# `admission.Budgeted`'s fields but the epoch: key, reserve, metric, unreserve, ladder, cold
SettleFields = tuple[str, int, str, str, bytes, str]


class AdmitBudgets(NamedTuple):
    """The chain's part of the admit script's keys and arguments (`lua/admit.lua`)."""

    keys: list[str]  # the counters, then the throttle windows of budgets that have a band
    numbers: bytes  # '<d' x 6 a budget: reserve, then `Compiled.admit_static`
    cold: str  # words read only on a refusal
    strings: list[str]  # a budget's reserve as a decimal, its counter key without the tag
    settle: list[SettleFields]


def admit_budgets(chain: Chain, req: AdmitRequest, tokens_estimate: int) -> AdmitBudgets:
    keys: list[str] = []
    throttle_keys: list[str] = []
    cold: list[str] = []
    numbers: list[bytes] = []
    strings: list[str] = []
    settle: list[SettleFields] = []
    by_metric = {MONEY: max(0, int(req.reserve_nanos)), REQUESTS: 1}
    packed: dict[int, tuple[bytes, str, str]] = {}  # reserve -> (double, decimal, unreserve)
    for budget, pkey, _end in chain.counted:
        c = budget.get("_alephant_compiled") or compiled(budget, req.workspace_id)
        period = c.periods.get(pkey) or c.strings(pkey)
        reserve = by_metric.get(c.metric, tokens_estimate)  # `reserve_for`
        found = packed.get(reserve)
        if found is None:
            decimal = str(reserve)
            found = (pack_double(reserve), decimal, "-" + decimal if reserve > 0 else "")
            packed[reserve] = found
        keys.append(period.counter_key)
        if c.throttled:
            throttle_keys.append(c.throttle_key)
        numbers.append(found[0])
        numbers.append(c.admit_static)
        cold.append(period.admit_cold)
        strings.append(found[1])
        strings.append(period.relative_key)
        settle.append(
            (period.counter_key, reserve, c.metric, found[2], c.settle_ladder, period.settle_cold)
        )
    return AdmitBudgets(keys + throttle_keys, b"".join(numbers), " ".join(cold), strings, settle)
