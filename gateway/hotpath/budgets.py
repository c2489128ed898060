"""Budgets of a workspace snapshot, compiled once per snapshot into what the scripts need.

A request's chain is key -> agent -> member -> department -> workspace; each scope may hold
several budgets. Per-request cost caps are decided here (no counter); `rpm` budgets become
sliding windows; every other budget becomes one counter for the current period.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime

from core.periods import PeriodCache
from core.rediskeys import budget_counter, workspace_tag
from gateway.hotpath.admission import AdmitRequest

DEFAULT_RPM_FLOOR = 100
DEFAULT_LADDER = (50, 75, 90, 100)
CHAIN = ("key", "agent", "member", "department", "workspace")
MONEY, REQUESTS, TOKENS, REQUEST_COST, RPM = "usd", "requests", "tokens", "request_usd", "rpm"


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


def _ladder_arg(budget: dict) -> str:
    limit = int(budget["limit"])
    steps = budget.get("ladder") or DEFAULT_LADDER
    # threshold = ceil(limit * step / 100), in integers: no float near the cap.
    return ",".join(f"{int(s)}={-(-limit * int(s) // 100)}" for s in steps) or "-"


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


@dataclass(frozen=True)
class Compiled:
    """What the scripts need of a budget, computed once per snapshot (not per request)."""

    metric: str
    limit: int
    budget_id: int
    ladder: str
    static: str  # "hard threshold throttle_rpm money budget_id" for the admit script
    counter_prefix: str  # the counter key without its period key
    throttle_key: str


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
        found = Compiled(
            metric=metric,
            limit=limit,
            budget_id=int(budget["id"]),
            ladder=_ladder_arg(budget),
            static=f"{hard} {threshold} {throttle_rpm} {money} {int(budget['id'])}",
            counter_prefix=budget_counter(workspace_id, int(budget["id"]), ""),
            throttle_key=f"{workspace_tag(workspace_id)}:th:{int(budget['id'])}",
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
