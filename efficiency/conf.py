"""Efficiency thresholds: every knob is a Django setting `ALEPHANT_EFF_*` (read from the
environment in `alephant/settings/base.py`), with the default below when the setting is absent.

The README section "Efficiency grades" documents each one; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from django.conf import settings


@dataclass(frozen=True)
class Thresholds:
    # Agent thrashing (veto): the same fingerprint this many times inside the window...
    thrash_window_seconds: int = 300
    thrash_min_repeats: int = 5
    # ...or a session with this many times more steps than the median of its peers.
    run_steps_factor: int = 5
    run_min_steps: int = 20
    run_min_peers: int = 3
    # A veto signal caps the score here (40 = grade D).
    veto_cap: int = 40
    # Model overkill: calls at most this short on a model at least `frontier_ratio` times the
    # price of the provider's cheap sibling for the same token counts.
    overkill_max_input_tokens: int = 400
    overkill_max_output_tokens: int = 300
    overkill_min_requests: int = 5
    frontier_ratio: Decimal = Decimal("3")
    cheap_siblings: str = "openai=gpt-4o-mini,anthropic=claude-haiku-4-5,gemini=gemini-2.0-flash"
    # Cache miss: identical requests paid more than once within this window (the cache TTL).
    cache_window_seconds: int = 3600
    # Context bloat: sessions whose input/output token ratio and input growth exceed these.
    bloat_ratio: int = 20
    bloat_growth: Decimal = Decimal("2")
    bloat_min_steps: int = 4
    bloat_recoverable: Decimal = Decimal("0.5")
    # Retry storm: error rate at least `retry_factor` x the rest of the workspace and above
    # `retry_min_rate`, with at least `retry_min_errors` errors.
    retry_factor: Decimal = Decimal("3")
    retry_min_rate: Decimal = Decimal("0.2")
    retry_min_errors: int = 5
    # Off-hours burst: share of an agent's spend outside working hours (workspace time zone)
    # with no human (agent-less) call by the same member in that hour.
    work_hours: str = "8-19"
    work_days: str = "0-4"
    offhours_share: Decimal = Decimal("0.5")
    offhours_min_usd: Decimal = Decimal("1")
    offhours_weight: Decimal = Decimal("0.25")
    # Score = 100 x (1 - waste_factor x weighted waste / spend), floored at 0.
    waste_factor: Decimal = Decimal("2")
    # Materiality. An entity is graded only when its spend in the period reaches the grade
    # floor; a signal counts only when its dollars reach the signal floor. Each floor is the
    # larger of an absolute amount and a share of the workspace's spend in the period, unless
    # the workspace set its own (`EfficiencySettings`, `/api/v1/efficiency/settings`).
    grade_min_usd: Decimal = Decimal("1")
    grade_min_share: Decimal = Decimal("0.005")
    signal_min_usd: Decimal = Decimal("0.10")
    signal_min_share: Decimal = Decimal("0.001")

    @property
    def siblings(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.cheap_siblings.split(",") if "=" in item)
        return {provider.strip(): model.strip() for provider, model in pairs}

    @property
    def work_hour_range(self) -> tuple[int, int]:
        start, _, end = self.work_hours.partition("-")
        return int(start), int(end)

    @property
    def work_day_set(self) -> frozenset[int]:
        start, _, end = self.work_days.partition("-")
        return frozenset(range(int(start), int(end or start) + 1))


def thresholds() -> Thresholds:
    values = {}
    for field in fields(Thresholds):
        name = f"ALEPHANT_EFF_{field.name.upper()}"
        if hasattr(settings, name):
            raw = getattr(settings, name)
            kind = type(field.default)
            values[field.name] = raw if kind is str else kind(str(raw))  # type: ignore[misc]
    return Thresholds(**values)
