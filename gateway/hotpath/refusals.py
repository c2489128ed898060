"""The answers `Enforcer.admit` gives when it refuses: status, OpenAI-style type, a message that
names the scope and when it resets, and machine-readable details."""

from __future__ import annotations

import logging
import math
from datetime import datetime

from core.money import usd_exact
from gateway.hotpath.admission import Admission, AdmitRequest, Handle
from gateway.hotpath.budgets import MONEY, REQUEST_COST

logger = logging.getLogger("alephant.enforcement")


def _usd(nanos: int) -> str:
    return usd_exact(int(nanos))  # exact, like the ledger: a program reads it


def retry_after(ms: int | float) -> str:
    return str(max(1, math.ceil(float(ms) / 1000)))


def budget_exceeded(
    budget: dict, end: datetime | None, spent: int, reserved: int, limit: int
) -> Admission:
    money = budget.get("metric", MONEY) == MONEY
    fmt = _usd if money else str
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
        "scope_key": budget.get("scope_key"),  # property "<name>=<value>" / customer id
        "request_url": budget.get("request_url"),  # ask for more (README "Budget requests")
    }
    headers = (
        {"Alephant-Budget-Remaining-USD": _usd(max(0, limit - spent - reserved))} if money else {}
    )
    return Admission(False, 402, "budget_exceeded", message, headers, details=details)


def request_cost_exceeded(budget: dict, req: AdmitRequest) -> Admission:
    limit = int(budget["limit"])
    message = (
        f"Budget exceeded: this call could cost up to {_usd(req.reserve_nanos)} USD, "
        f"over the per-request cap of {_usd(limit)} USD on "
        f"{budget['scope_type']} {budget['scope_id']} "
        f"(budget {budget['id']}). Lower max_tokens or the prompt size."
    )
    details = {
        "scope_type": budget["scope_type"],
        "scope_id": budget["scope_id"],
        "budget_id": budget["id"],
        "metric": REQUEST_COST,
        "period": "request",
        "spent": _usd(req.reserve_nanos),
        "limit": _usd(limit),
        "resets_at": None,
    }
    return Admission(False, 402, "budget_exceeded", message, details=details)


def throttled(budget: dict, wait_ms: int) -> Admission:
    return Admission(
        False,
        429,
        "rate_limit_exceeded",
        f"{budget['scope_type']} budget {budget['id']} is past its throttle point "
        f"({budget.get('throttle_at')}%): limited to "
        f"{budget.get('throttle_rpm')} requests/minute.",
        {"Retry-After": retry_after(wait_ms)},
        details={
            "reason": "throttle",
            "budget_id": budget["id"],
            "scope_type": budget["scope_type"],
            "scope_id": budget["scope_id"],
        },
    )


def window_full(budget: dict, wait_ms: int) -> Admission:
    return Admission(
        False,
        429,
        "rate_limit_exceeded",
        f"Rate limit of {budget['limit']} requests/minute for "
        f"{budget['scope_type']} {budget['scope_id']} reached (budget {budget['id']}).",
        {"Retry-After": retry_after(wait_ms)},
        details={
            "reason": "rate",
            "budget_id": budget["id"],
            "scope_type": budget["scope_type"],
            "scope_id": budget["scope_id"],
        },
    )


def key_rate_limited(code: str, rpm: int, tpm: int, key_id: int, wait_ms: int) -> Admission:
    what = f"{rpm} requests/minute" if code == "rate" else f"{tpm} tokens/minute"
    return Admission(
        False,
        429,
        "rate_limit_exceeded",
        f"Rate limit of {what} for this key reached.",
        {"Retry-After": retry_after(wait_ms)},
        details={"reason": code, "scope_type": "key", "scope_id": key_id},
    )


def loop_detected(count: int, loop_window: int) -> Admission:
    return Admission(
        False,
        429,
        "loop_detected",
        f"Agent loop detected: the same request was sent {count} times within "
        f"{loop_window} s. Change the request or wait.",
        {"Retry-After": str(loop_window)},
        details={"reason": "loop", "count": count},
    )


def counters_unavailable(message: str, retry_s: int) -> Admission:
    return Admission(False, 503, "service_unavailable", message, {"Retry-After": str(retry_s)})


def redis_down(req: AdmitRequest, exc: BaseException, *, fail_open: bool) -> Admission:
    if fail_open:
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
            handle=Handle(req.workspace_id, req.request_id, []),
        )
    logger.error("enforcement: Redis unreachable (%s); refusing request %s", exc, req.request_id)
    return counters_unavailable(
        "Budget enforcement is unavailable (counter store unreachable); retry shortly.", 5
    )
