"""Cyclic-GC settings for a long-lived gateway process.

Measured with `make bench` (README "Benchmarks"): with the interpreter's defaults (700, 10, 10)
about a fifth of a call's CPU went to collector passes. Each call allocates a few thousand
container objects (parsed bodies, dicts, futures, coroutines), so generation 0 filled every few
calls, and the older generations kept re-walking everything imported at startup (Django, the
provider SDK shapes, the price catalog: hundreds of thousands of objects that live forever).

So, once the runtime is up: collect, then `gc.freeze()` what exists (moved to a permanent
generation: never walked again, never freed, which it never would be anyway), and raise the
generation-0 threshold. Per-call garbage is almost all acyclic and freed by reference counting
at once; the cycles a call leaves (exception tracebacks, a cancelled task) are still collected,
just in larger, rarer batches, so memory stays flat under load (a few MB more in flight).
"""

from __future__ import annotations

import gc

# gen0 every 20,000 net container allocations (a few hundred calls), gen1 every 20 of those,
# gen2 every 10 gen1 passes (and only once enough survived: CPython's own 25 % rule).
THRESHOLDS = (20_000, 20, 10)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
