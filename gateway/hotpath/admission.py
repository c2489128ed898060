"""What `Enforcer.admit` takes and gives back, and the handle settle/release use."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

SETTLED_TTL_S = 2 * 24 * 3600
pack_double = struct.Struct("<d").pack  # the scripts read their numbers as little-endian doubles

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
    # An agent placed in another department than its owner's: charged besides the owner's.
    agent_department_id: int | None = None
    # Alephant-Property-* (and Alephant-Customer as `customer`): property/customer budgets.
    properties: dict[str, str] | None = None


@dataclass
class Admission:
    allowed: bool
    status: int = 200  # 402 budget / 429 rate or throttle or loop / 503 redis down
    error_type: str | None = None  # budget_exceeded | rate_limit_exceeded | loop_detected | ...
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    handle: object | None = None  # opaque, passed back to settle/release
    details: dict | None = None  # machine-readable refusal facts (scope, budget, spent, ...)


@dataclass(slots=True)
class Settle:
    """The settle script's words of a frame (`lua/settle.lua`); per call only the request id,
    the epochs, what was reserved and what was used."""

    settled_prefix: str  # "<tag>:settled:", the request id follows
    keys: list[str]  # the workspace's alerts stream and reservation index, then the counters
    count: bytes  # the number of counters, packed
    ladders: list[bytes]  # b"", then each counter's `Compiled.settle_ladder` (its actual between)
    cold: str
    kinds: tuple[int, ...]  # per counter: which of (money, requests, tokens) it counts
    uniform: int  # the one kind of every counter, -1 when they differ


@dataclass
class Handle:
    workspace_id: int
    request_id: str
    budgets: list[str]  # the epoch admit saw of each counter on the chain (none: nothing to settle)
    done: bool = False
    member: str = ""  # this request's entry in the workspace's reservation index
    settle: Settle | None = None  # the chain's settle words (`budgets.Frame.settle`)
    reserves: tuple[int, int, int] = (0, 0, 0)  # held on a money, a requests, a tokens counter


def settle_call(
    handle: Handle, *, cost_nanos: int, count: int, tokens: int
) -> tuple[list[str], list]:
    """The settle script's keys and arguments (`lua/settle.lua`), before the usage events."""
    plan = handle.settle
    assert plan is not None  # set with the epochs (`Enforcer._admitted`)
    n = len(plan.kinds)
    epochs = handle.budgets
    keys = [plan.settled_prefix + handle.request_id, *plan.keys]
    per_budget: list = [""] * (3 * n)
    per_budget[0::3] = epochs
    actuals = (cost_nanos, count, tokens)
    kind = plan.uniform
    if kind >= 0:
        actual, reserve = actuals[kind], handle.reserves[kind]
        per_budget[1::3] = ["-" + str(reserve) if reserve > 0 else ""] * n
        per_budget[2::3] = [str(actual) if actual > 0 else ""] * n
        numbers = plan.count + pack_double(actual).join(plan.ladders)
    else:
        parts = [b""] * (2 * n)
        packed = [pack_double(a) for a in actuals]
        parts[0::2] = [packed[k] for k in plan.kinds]
        parts[1::2] = plan.ladders[1:]
        unreserve = ["-" + str(r) if r > 0 else "" for r in handle.reserves]
        decimals = [str(a) if a > 0 else "" for a in actuals]
        per_budget[1::3] = [unreserve[k] for k in plan.kinds]
        per_budget[2::3] = [decimals[k] for k in plan.kinds]
        numbers = plan.count + b"".join(parts)
    args = [SETTLED_TTL_S, handle.workspace_id, handle.request_id, handle.member]
    return keys, [*args, numbers, plan.cold, *per_budget]
