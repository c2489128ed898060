"""Money: exact integer nano-dollars everywhere; one rule to show them to people."""

from __future__ import annotations

NANOS_PER_USD = 1_000_000_000
