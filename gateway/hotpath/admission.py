"""What `Enforcer.admit` takes and gives back, and the handle settle/release use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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
class Budgeted:
    key: str
    reserve: int
    metric: str
    unreserve: str  # "-<reserve>" (what settle's HINCRBY adds), "" when nothing was reserved
    settle_ladder: bytes  # `budgets.Compiled.settle_ladder`
    settle_cold: str  # the settle script's words for this budget (id, period, limit, steps)
    epoch: str  # the counter's epoch admit saw


@dataclass
class Handle:
    workspace_id: int
    request_id: str
    budgets: list[Budgeted]
    done: bool = False
    member: str = ""  # this request's entry in the workspace's reservation index
