"""Collector tuning: on for served processes (Config.from_env), off for a Config built in code,
and what `tune_gc` leaves behind. Timings live in `make bench`, not here."""

from __future__ import annotations

import gc

from gateway.hotpath.config import Config
from gateway.hotpath.gctune import THRESHOLDS, tune_gc


def test_served_processes_tune_and_in_code_configs_do_not():
    assert Config.from_env({"ALEPHANT_KEY_HASH_SECRET": "x" * 32}).gc_tuning is True
    off = Config.from_env({"ALEPHANT_KEY_HASH_SECRET": "x" * 32, "ALEPHANT_GC_TUNING": "0"})
    assert off.gc_tuning is False
    assert Config(key_hash_secret="x" * 32).gc_tuning is False


def test_tune_gc_freezes_startup_objects_and_raises_the_thresholds():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # cycles are still collected, just in larger batches
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
