"""Budget periods in the workspace's time zone. One implementation, shared with the gateway
(`gateway.enforcement.period_bounds`, Django-free), so both sides agree on every boundary."""

from gateway.enforcement import period_bounds

__all__ = ["period_bounds"]
