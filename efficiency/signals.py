"""Efficiency signals: ledger rows in, findings (each with its evidence and dollars) out.

Pure and deterministic: no database, no clock, no randomness. The same rows (in any order)
and the same thresholds always give the same result, down to the order of the evidence.
`efficiency/services.py` loads the rows from `billing.UsageRecord`; `efficiency/grading.py`
turns the findings into scores, grades and verdicts.

Every signal is a `Finding` for one homogeneous group of calls (one member, agent and
department), with the dollars it put at stake *per request*. An entity's weighted waste
counts each request once, at the largest weighted impact any signal gives it, so a loop
that is also a cache miss is not charged twice.
"""

from __future__ import annotations

import statistics
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal

from core.money import format_usd
from efficiency.conf import Thresholds
from efficiency.findings import (
    CACHE_MISS,
    CONTEXT_BLOAT,
    MODEL_OVERKILL,
    OFF_HOURS,
    RETRY_STORM,
    THRASHING,
    ZERO,
    Finding,
    PriceFn,
    Row,
    fills_cache,
    group_by,
    median_without,
    money,
    short_fp,
    who_label,
)


def detect_thrashing(rows: list[Row], t: Thresholds) -> list[Finding]:
    """Same fingerprint >= N times inside the window, per owner + session; or a runaway run."""
    findings = []
    by_loop = group_by(
        (r for r in rows if r.fingerprint), lambda r: (*r.owner, r.session_id, r.fingerprint)
    )
    for (member_id, agent_id, dept_id, session_id, fingerprint), group in by_loop.items():
        flagged: set[int] = set()
        start = 0
        for end in range(len(group)):
            while (group[end].created_at - group[start].created_at).total_seconds() > (
                t.thrash_window_seconds
            ):
                start += 1
            if end - start + 1 >= t.thrash_min_repeats:
                flagged.update(range(start, end + 1))
        if not flagged:
            continue
        loop = [group[i] for i in sorted(flagged)]
        # The first call of the loop was a legitimate request; every paid repeat is waste,
        # except the one that filled the response cache (switching the cache on is the fix).
        impact = {
            r.request_id: (ZERO if i == 0 or fills_cache(group, k) else r.cost_usd)
            for i, (k, r) in enumerate((k, group[k]) for k in sorted(flagged))
        }
        span = (loop[-1].created_at - loop[0].created_at).total_seconds()
        owner = (member_id, agent_id, dept_id)
        findings.append(
            Finding.of(
                THRASHING,
                owner,
                summary=(
                    f"{who_label(owner)} sent the same request "
                    f"(fingerprint {short_fp(fingerprint)}) "
                    f"{len(loop)} times in {int(span)} s"
                    + (f" in session {session_id}" if session_id else "")
                    + f", {format_usd(sum(impact.values(), ZERO))} on repeats"
                ),
                impact_by_request=impact,
                facts={
                    "fingerprint": fingerprint,
                    "session_id": session_id,
                    "repeats": len(loop),
                    "span_seconds": int(span),
                    "pattern": "loop",
                },
            )
        )
    findings.extend(_runaway_runs(rows, t))
    return findings


def _runaway_runs(rows: list[Row], t: Thresholds) -> list[Finding]:
    findings = []
    runner = group_by((r for r in rows if r.session_id), lambda r: r.owner)
    for owner, owner_rows in runner.items():
        sessions = group_by(owner_rows, lambda r: (r.session_id,))
        if len(sessions) < t.run_min_peers + 1:
            continue
        lengths = sorted(len(s) for s in sessions.values())
        for (session_id,), steps in sessions.items():
            if len(steps) < t.run_min_steps:
                continue
            median = median_without(lengths, len(steps))
            if len(steps) <= t.run_steps_factor * median:
                continue
            normal = int(median.to_integral_value(rounding=ROUND_HALF_UP))
            impact = {
                r.request_id: (ZERO if i < normal else r.cost_usd) for i, r in enumerate(steps)
            }
            findings.append(
                Finding.of(
                    THRASHING,
                    owner,
                    summary=(
                        f"{who_label(owner)} ran session {session_id} for {len(steps)} steps where "
                        f"its other sessions take {median.normalize()} (median), "
                        f"{format_usd(sum(impact.values(), ZERO))} beyond that"
                    ),
                    impact_by_request=impact,
                    facts={
                        "session_id": session_id,
                        "steps": len(steps),
                        "peer_median_steps": str(median.normalize()),
                        "pattern": "runaway",
                    },
                )
            )
    return findings


def detect_model_overkill(rows: list[Row], t: Thresholds, price: PriceFn) -> list[Finding]:
    findings = []
    siblings = t.siblings
    short = [
        r
        for r in rows
        if r.paid
        and r.provider in siblings
        and r.model != siblings[r.provider]
        and r.input_tokens <= t.overkill_max_input_tokens
        and r.output_tokens <= t.overkill_max_output_tokens
    ]
    for (member_id, agent_id, dept_id, provider, model), group in group_by(
        short, lambda r: (*r.owner, r.provider, r.model)
    ).items():
        sibling = siblings[provider]
        impact: dict[str, Decimal] = {}
        for r in group:
            cheaper = price(provider, sibling, r.input_tokens, r.output_tokens)
            if cheaper is None or r.cost_usd < t.frontier_ratio * cheaper:
                continue
            impact[r.request_id] = r.cost_usd - cheaper
        if len(impact) < t.overkill_min_requests:
            continue
        owner = (member_id, agent_id, dept_id)
        spent = sum((r.cost_usd for r in group if r.request_id in impact), ZERO)
        saving = sum(impact.values(), ZERO)
        findings.append(
            Finding.of(
                MODEL_OVERKILL,
                owner,
                summary=(
                    f"{who_label(owner)} used {model} for {len(impact)} short calls "
                    f"(<= {t.overkill_max_input_tokens} in / {t.overkill_max_output_tokens} out "
                    f"tokens) costing {format_usd(spent)}; {sibling} would have cost "
                    f"{format_usd(spent - saving)}, saving {format_usd(saving)}"
                ),
                impact_by_request=impact,
                facts={
                    "provider": provider,
                    "model": model,
                    "suggested_model": sibling,
                    "spent_usd": str(money(spent)),
                    "savings_usd": str(money(saving)),
                },
            )
        )
    return findings


def detect_cache_miss(rows: list[Row], t: Thresholds) -> list[Finding]:
    """Identical non-streaming requests paid again while a cache entry would still be live.

    A paid call followed by a cache hit on the same request filled the gateway's cache: that is
    the cache working (its TTL had lapsed, or it was just switched on), not a miss."""
    findings = []
    cacheable = [r for r in rows if r.fingerprint and not r.stream and not r.failed]
    for owner, owner_rows in group_by(cacheable, lambda r: r.owner).items():
        impact: dict[str, Decimal] = {}
        fingerprints = 0
        for (_fingerprint,), group in group_by(owner_rows, lambda r: (r.fingerprint,)).items():
            entry_at = None  # when the (hypothetical) cache entry was written
            hit_any = False
            for i, r in enumerate(group):
                live = entry_at is not None and (
                    (r.created_at - entry_at).total_seconds() <= t.cache_window_seconds
                )
                fills = fills_cache(group, i)
                if live and r.paid and not fills:
                    impact[r.request_id] = r.cost_usd
                    hit_any = True
                elif not live or fills:
                    entry_at = r.created_at
            fingerprints += hit_any
        if not impact:
            continue
        lost = sum(impact.values(), ZERO)
        findings.append(
            Finding.of(
                CACHE_MISS,
                owner,
                summary=(
                    f"{who_label(owner)} paid {len(impact)} times for answers it had already "
                    f"received ({fingerprints} distinct requests), {format_usd(lost)} a response "
                    f"cache would have saved"
                ),
                impact_by_request=impact,
                facts={"distinct_requests": fingerprints, "dollars_lost": str(money(lost))},
            )
        )
    return findings


def detect_context_bloat(rows: list[Row], t: Thresholds, price: PriceFn) -> list[Finding]:
    findings = []
    for (member_id, agent_id, dept_id, session_id), steps in group_by(
        (r for r in rows if r.session_id and r.paid), lambda r: (*r.owner, r.session_id)
    ).items():
        if len(steps) < t.bloat_min_steps:
            continue
        first_input = max(steps[0].input_tokens, 1)
        ratios = [Decimal(r.input_tokens) / max(r.output_tokens, 1) for r in steps]
        growth = Decimal(steps[-1].input_tokens) / first_input
        if statistics.median(ratios) < t.bloat_ratio or growth < t.bloat_growth:
            continue
        impact = {}
        for r in steps:
            resent = max(r.input_tokens - first_input, 0)
            if not resent:
                continue
            per_input = price(r.provider, r.model, 1_000_000, 0)
            if per_input is not None:
                resent_cost = min(per_input * resent / 1_000_000, r.cost_usd)
            else:  # no catalog price: the resent tokens' share of the call
                resent_cost = r.cost_usd * resent / max(r.input_tokens + r.output_tokens, 1)
            impact[r.request_id] = resent_cost * t.bloat_recoverable
        owner = (member_id, agent_id, dept_id)
        findings.append(
            Finding.of(
                CONTEXT_BLOAT,
                owner,
                summary=(
                    f"{who_label(owner)} grew its input {growth.quantize(Decimal('0.1'))}x along "
                    f"session {session_id} ({steps[0].input_tokens} -> {steps[-1].input_tokens} "
                    f"tokens, median {statistics.median(ratios).quantize(Decimal('1'))}:1 "
                    f"input:output); trimming history would save about "
                    f"{format_usd(sum(impact.values(), ZERO))}"
                ),
                impact_by_request=impact,
                facts={
                    "session_id": session_id,
                    "steps": len(steps),
                    "first_input_tokens": steps[0].input_tokens,
                    "last_input_tokens": steps[-1].input_tokens,
                },
            )
        )
    return findings


def detect_retry_storm(rows: list[Row], t: Thresholds) -> list[Finding]:
    findings = []
    total = len(rows)
    total_failed = sum(r.failed for r in rows)
    for owner, group in group_by(rows, lambda r: r.owner).items():
        failed = [r for r in group if r.failed]
        if len(failed) < t.retry_min_errors:
            continue
        rate = Decimal(len(failed)) / len(group)
        rest = total - len(group)
        norm = Decimal(total_failed - len(failed)) / rest if rest else ZERO
        if rate < t.retry_min_rate or rate < t.retry_factor * norm:
            continue
        # Dollars: failed calls that were still billed, plus paid repeats of a failed request.
        failed_fps = {r.fingerprint for r in failed if r.fingerprint}
        impact = {r.request_id: r.cost_usd for r in failed}
        seen: set[str] = set()
        for r in group:
            if r.paid and r.fingerprint in failed_fps:
                if r.fingerprint in seen:
                    impact[r.request_id] = r.cost_usd
                seen.add(r.fingerprint)
        findings.append(
            Finding.of(
                RETRY_STORM,
                owner,
                summary=(
                    f"{who_label(owner)} failed {len(failed)} of {len(group)} calls "
                    f"({(rate * 100).quantize(Decimal('1'))}%) against a workspace norm of "
                    f"{(norm * 100).quantize(Decimal('1'))}%"
                ),
                impact_by_request=impact,
                facts={
                    "errors": len(failed),
                    "calls": len(group),
                    "error_rate": str(rate.quantize(Decimal("0.001"))),
                    "workspace_norm": str(norm.quantize(Decimal("0.001"))),
                },
            )
        )
    return findings


def detect_off_hours(rows: list[Row], t: Thresholds, time_zone: str) -> list[Finding]:
    tz = zoneinfo.ZoneInfo(time_zone)
    start_hour, end_hour = t.work_hour_range
    days = t.work_day_set

    def local_hour(r: Row) -> tuple:
        local = r.created_at.astimezone(tz)
        return (local.date(), local.hour, local.weekday())

    # Hours in which each member made calls of their own (no agent): a human was at work.
    human_hours = {(r.member_id, local_hour(r)[:2]) for r in rows if r.agent_id is None}
    findings = []
    for owner, group in group_by(
        (r for r in rows if r.agent_id is not None), lambda r: r.owner
    ).items():
        spend = sum((r.cost_usd for r in group), ZERO)
        off = []
        for r in group:
            _day, hour, weekday = when = local_hour(r)
            outside = weekday not in days or not (start_hour <= hour < end_hour)
            if outside and (r.member_id, when[:2]) not in human_hours and r.cost_usd > 0:
                off.append(r)
        off_spend = sum((r.cost_usd for r in off), ZERO)
        if not spend or off_spend < t.offhours_min_usd or off_spend / spend < t.offhours_share:
            continue
        impact = {r.request_id: r.cost_usd * t.offhours_weight for r in off}
        percent = (off_spend / spend * 100).quantize(Decimal("1"))
        findings.append(
            Finding.of(
                OFF_HOURS,
                owner,
                summary=(
                    f"{who_label(owner)} spent {format_usd(off_spend)} "
                    f"({percent}% of its spend) in "
                    f"{len(off)} calls outside working hours ({t.work_hours} h, {time_zone}) "
                    "with no human session"
                ),
                impact_by_request=impact,
                facts={
                    "off_hours_usd": str(money(off_spend)),
                    "calls": len(off),
                    "time_zone": time_zone,
                },
            )
        )
    return findings
