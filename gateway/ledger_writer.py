"""Ledger writer: drains the Redis stream `alephant:usage` into `billing.UsageRecord`.

    python manage.py ledger_writer          (also started by `make run`)

* Consumer group `ledger`; each writer is one consumer (`<host>-<pid>`), so several can run.
* A batch (up to `BATCH_SIZE` entries) is one transaction: its events are grouped by workspace
  and each workspace's rows are one `INSERT ... SELECT FROM json_to_recordset(...) ON CONFLICT
  DO NOTHING` inside that workspace's scope (RLS applies), so a replay is harmless
  (`gateway/ledger_rows.py`). If the batch fails on a bad row, each workspace is retried on its
  own, then row by row.
* Entries are acknowledged (XACK) and removed (XDEL) only after the transaction committed: a
  writer killed mid-batch leaves them pending, and the next writer claims them (XAUTOCLAIM once
  they have been idle for `claim_idle_ms`).
* An event that cannot be stored (bad JSON, a workspace that no longer exists) goes to
  `alephant:usage:dead` with the reason, and is acknowledged, so it can't block the stream.
* `run_forever` never exits on an outage: a flushed Redis, a
  deleted stream or group (recreated), Redis or Postgres down or restarted (retried with
  backoff, entries stay pending until their batch commits).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from typing import Any

import orjson
import redis
from django.conf import settings
from django.db import DataError, IntegrityError, connection, connections, transaction
from django.db import Error as DjangoDBError

from core.backoff import Backoff
from core.redisclients import sync_client
from core.rediskeys import USAGE_DEAD_STREAM
from gateway.hotpath.usage import GROUP, STREAM
from gateway.ledger_rows import BadEvent, insert_rows, row_from_event

logger = logging.getLogger("alephant.ledger")

DEAD_STREAM = USAGE_DEAD_STREAM  # name kept for callers
# Entries per read and per transaction. Postgres pays a fixed cost per statement (one per workspace
# in the batch) and per commit: 500 cost ~30 % more CPU per event than 2,000 (bench/ingest.py);
# 5,000 saved nothing more and makes a failed batch longer to redo.
BATCH_SIZE = 2000


class LedgerWriter:
    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        consumer: str | None = None,
        batch_size: int = BATCH_SIZE,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        stream: str = STREAM,
        create_group: bool = True,
    ) -> None:
        # A socket timeout above the blocking read, so a hung (not dead) Redis is noticed too.
        self.redis = client or sync_client(
            settings.REDIS_URL, socket_timeout=block_ms / 1000 + 10, socket_connect_timeout=5
        )
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.stream = stream
        self._last_claim = 0.0
        if create_group:  # `run_forever` creates it itself, so a writer can start before Redis
            self.ensure_group()

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # --- reading ----------------------------------------------------------------------------

    def _claim(self) -> list[tuple[bytes, dict]]:
        """Entries a dead consumer read but never acknowledged."""
        claimed: list[tuple[bytes, dict]] = []
        start = "0-0"
        while len(claimed) < self.batch_size:
            result = self.redis.xautoclaim(
                self.stream,
                GROUP,
                self.consumer,
                self.claim_idle_ms,
                start_id=start,
                count=self.batch_size,
            )
            start, entries = result[0], result[1]
            claimed.extend((eid, fields) for eid, fields in entries if fields)
            if start in (b"0-0", "0-0"):
                break
        return claimed

    def _own_pending(self) -> list[tuple[bytes, dict]]:
        """Entries this consumer read earlier but didn't acknowledge (a failed batch)."""
        result: Any = self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: "0"}, count=self.batch_size
        )
        return [(eid, f) for _s, entries in result or () for eid, f in entries if f]

    def read(self, block_ms: int | None = None) -> list[tuple[bytes, dict]]:
        now = time.monotonic()
        if now - self._last_claim >= max(1.0, self.claim_idle_ms / 2000):
            self._last_claim = now
            entries = self._own_pending() or self._claim()
            if entries:
                return entries
        result: Any = self.redis.xreadgroup(
            GROUP,
            self.consumer,
            {self.stream: ">"},
            count=self.batch_size,
            block=None if block_ms == -1 else (self.block_ms if block_ms is None else block_ms),
        )
        return [(eid, f) for _s, entries in result or () for eid, f in entries]

    # --- writing ----------------------------------------------------------------------------

    def _dead(self, entry_id: bytes, raw: bytes | None, reason: str) -> None:
        self.redis.xadd(DEAD_STREAM, {"id": entry_id, "e": raw or b"", "reason": reason[:500]})
        logger.error("ledger: usage event %s moved to %s: %s", entry_id, DEAD_STREAM, reason)

    def _store(self, by_workspace: dict[int, list[dict[str, Any]]]) -> None:
        """One transaction for the whole batch, each workspace's rows in its own RLS scope.

        Workspaces in id order and rows in request-id order: two writers inserting the same
        replayed events lock them in the same order, so they wait for each other, never deadlock.
        """
        with transaction.atomic(), connection.cursor() as cursor:
            for workspace_id in sorted(by_workspace):
                rows = sorted(by_workspace[workspace_id], key=_request_id)
                insert_rows(cursor, workspace_id, rows)

    def _store_apart(
        self, workspace_id: int, items: list[tuple[bytes, dict[str, Any], bytes]]
    ) -> None:
        """After a failed batch: this workspace alone, then row by row; what still fails is dead."""
        try:
            self._store({workspace_id: [row for _e, row, _r in items]})
            return
        except (IntegrityError, DataError):
            pass
        for entry_id, row, raw in items:
            try:
                self._store({workspace_id: [row]})
            except (IntegrityError, DataError) as exc:
                self._dead(entry_id, raw, f"{type(exc).__name__}: {exc}")

    def write(self, entries: list[tuple[bytes, dict]]) -> int:
        """Store a batch; returns how many entries were acknowledged."""
        by_workspace: dict[int, list[tuple[bytes, dict[str, Any], bytes]]] = defaultdict(list)
        done: list[bytes] = []
        for entry_id, fields in entries:
            raw: bytes = fields.get(b"e") or fields.get("e") or b""
            try:
                row = row_from_event(orjson.loads(raw))
            except (orjson.JSONDecodeError, TypeError, AttributeError, BadEvent) as exc:
                self._dead(entry_id, raw, str(exc))
                done.append(entry_id)
                continue
            by_workspace[row["workspace_id"]].append((entry_id, row, raw))
            done.append(entry_id)
        try:
            self._store({ws: [row for _e, row, _r in items] for ws, items in by_workspace.items()})
        except (IntegrityError, DataError):
            # One bad row (e.g. its workspace was deleted) must not hold back the rest. An
            # outage (OperationalError, InterfaceError) is raised instead: the whole batch
            # stays pending and is retried.
            for workspace_id, items in by_workspace.items():
                self._store_apart(workspace_id, items)
        if done:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.stream, GROUP, *done)
            pipe.xdel(self.stream, *done)
            pipe.execute()
        return len(done)

    def drain(self, *, max_batches: int = 1000) -> int:
        """Write everything currently readable (tests, shutdown); returns entries written."""
        total = 0
        for _ in range(max_batches):
            entries = self.read(block_ms=-1)
            if not entries:
                break
            total += self.write(entries)
        return total

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Write batches until `stop` is set; no outage makes it return (see module docstring)."""
        stop = stop or threading.Event()
        backoff = Backoff(initial=0.2, maximum=5.0, reset_after=5.0)
        outages = _Outages()
        group_ready = False
        logger.info("ledger writer %s reading %s", self.consumer, self.stream)
        while not stop.is_set():
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                entries = self.read()
                if entries:
                    self.write(entries)
            except redis.RedisError as exc:
                # A flush, a restart without persistence, XGROUP DESTROY or DEL of the stream
                # ("NOGROUP", "UNBLOCKED the stream key no longer exists") all mean: make the
                # group again (MKSTREAM, from id 0 so nothing appended meanwhile is skipped).
                group_ready = False
                self._failed(outages, backoff, stop, _redis_trouble(exc), exc)
            except DjangoDBError as exc:
                # The connection may be dead (Postgres restarted, backend terminated): drop it
                # so the next attempt reconnects; the batch stays pending in the group.
                connections.close_all()
                self._failed(outages, backoff, stop, "postgres", exc)
            except Exception as exc:  # a loop that must not die: log it, back off, go on
                self._failed(outages, backoff, stop, "unexpected error", exc)
            else:
                outages.recovered()
                backoff.healthy()
        logger.info("ledger writer %s stopped", self.consumer)

    def _failed(
        self, outages: _Outages, backoff: Backoff, stop: threading.Event, what: str, exc: Exception
    ) -> None:
        outages.failed(what, exc)
        self._last_claim = 0.0  # next read starts with our own pending entries (the failed batch)
        stop.wait(backoff.failure())


class _Outages:
    """One warning when something breaks and one line when it works again, not one per retry."""

    def __init__(self) -> None:
        self._down: dict[str, tuple[float, int]] = {}

    def failed(self, what: str, exc: Exception) -> None:
        if what in self._down:
            since, attempts = self._down[what]
            self._down[what] = (since, attempts + 1)
            return
        self._down[what] = (time.monotonic(), 1)
        logger.warning(
            "ledger: %s (%s: %s); retrying with backoff",
            what,
            type(exc).__name__,
            exc,
            exc_info=what == "unexpected error",
        )

    def recovered(self) -> None:
        for what, (since, attempts) in self._down.items():
            logger.warning(
                "ledger: recovered from %s after %.1f s (%d failed attempts)",
                what,
                time.monotonic() - since,
                attempts,
            )
        self._down.clear()


def _redis_trouble(exc: redis.RedisError) -> str:
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "redis unavailable"
    text = str(exc)
    if "NOGROUP" in text or "no longer exists" in text:
        return "usage stream or consumer group missing (flushed or deleted); recreating"
    return "redis error"


def _request_id(row: dict[str, Any]) -> str:
    return row["request_id"]
