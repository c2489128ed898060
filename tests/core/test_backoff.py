"""The one backoff policy: doubling up to a ceiling, reset after a healthy stretch."""

from __future__ import annotations

from core.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_doubles_up_to_the_ceiling():
    backoff = Backoff(initial=0.5, maximum=30.0, clock=Clock())
    assert [backoff.failure() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_resets_only_after_a_minute_of_health():
    clock = Clock()
    backoff = Backoff(initial=0.5, maximum=30.0, reset_after=60.0, clock=clock)
    for _ in range(4):
        backoff.failure()
    backoff.healthy()
    clock.now += 59  # up, but not long enough: the next crash keeps climbing
    assert backoff.failure() == 8
    backoff.healthy()
    clock.now += 60
    assert backoff.failure() == 0.5
