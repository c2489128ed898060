"""Exponential backoff for loops that must outlive their dependencies (ledger writer, `make run`).

One policy, written once: wait `initial` seconds after the first failure, double up to `maximum`,
and start again from `initial` once things have been healthy for `reset_after` seconds (a child
that crashes once a day shouldn't wait 30 s because it also crashed yesterday).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    reset_after: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = field(default=0, init=False)
    _healthy_since: float | None = field(default=None, init=False)

    def failure(self) -> float:
        """Record a failure; returns how long to wait before the next attempt."""
        if (
            self._healthy_since is not None
            and self.clock() - self._healthy_since >= self.reset_after
        ):
            self.failures = 0
        self._healthy_since = None
        delay = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return delay

    def healthy(self) -> None:
        """The thing works (again); the count resets once it has kept working for `reset_after`."""
        if self._healthy_since is None:
            self._healthy_since = self.clock()

    def reset(self) -> None:
        self.failures = 0
        self._healthy_since = None
