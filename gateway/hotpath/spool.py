"""The usage spool: a local, append-only, fsync'd file for usage events Redis would not take.

The gateway puts every call's usage events in Redis before the client sees the end of its
answer (`accounting.account`). When Redis is unreachable at that moment (it died while the call
was in flight), the events are appended here instead, and `fsync`ed before the answer is
completed: a gateway SIGKILLed right after answering still has them on disk. `replay_forever`
(started by `Runtime`) pushes them to the usage stream once Redis is back, then deletes the file.

Layout: `<ALEPHANT_USAGE_SPOOL_DIR>/<target>/usage-<pid>-<token>.jsonl`, where `<target>` names
the Redis host/port/db and stream the events were meant for (two deployments or test runs that
share a spool dir never replay into each other's Redis). One event per line (orjson never
writes a raw newline); a torn last line (a process killed mid-write, before its fsync, so before
its client was answered) is ignored.

Ownership is a `flock` held for as long as the owner lives: the kernel drops it when the process
dies, however it dies. A replayer takes a file over by locking it and then renaming it to a name
of its own; only one rename of a path can succeed, so two processes never replay the same file.
The directory must be on a local filesystem (flock), one per host or per pod volume.

No Django here: stdlib + orjson (+ the async Redis client the runtime hands in).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from core.backoff import Backoff
from core.rediskeys import usage_stream_of_event as stream_of

logger = logging.getLogger("alephant.gateway")

SUFFIX = ".jsonl"
REPLAY_INTERVAL_S = 0.5
REPLAY_BATCH = 500


def target_name(redis_url: str, stream: str) -> str:
    """A directory name for one Redis target + stream (no password in it, none in the hash)."""
    parts = urlsplit(redis_url)
    where = f"{parts.hostname}:{parts.port}{parts.path or '/0'}|{stream}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


@dataclass
class Claimed:
    """A spool file this process owns (locked, renamed to its own name), read into memory."""

    path: Path
    fd: int
    events: list[bytes] | None = None  # read by the replayer
    pushed: bool = False  # in the usage stream (kept until the replicas hold it, if asked to)


class Spool:
    """One process's spool. `append` and `claim` block (disk I/O): call them in a thread."""

    def __init__(self, directory: str | Path, *, redis_url: str, stream: str) -> None:
        self.dir = Path(directory) / target_name(redis_url, stream)
        self.stream = stream
        self._token = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._serial = 0
        self._fd: int | None = None  # the file appends go to (created on the first one)
        self._path: Path | None = None
        # Appends (worker threads) and the replayer's rotation of the current file must not
        # interleave: an event written to a file after it was read for replay would be lost.
        self._lock = threading.Lock()

    def _new_name(self) -> Path:
        self._serial += 1
        return self.dir / f"usage-{self._token}-{self._serial}{SUFFIX}"

    def append(self, events: Sequence[bytes]) -> None:
        """Write the events and fsync them; raises OSError (disk full, read-only) if not durable."""
        # The leading newline ends any torn line a failed earlier write left behind, so it can
        # never glue onto (and spoil) these events; empty lines are skipped on replay.
        data = b"\n" + b"\n".join(events) + b"\n"
        with self._lock:
            if self._fd is None:
                self._open_current()
            assert self._fd is not None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError:
                self._detach_current()  # replay what is there; the next append starts a new file
                raise

    def _open_current(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._new_name()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours for as long as we live
        _fsync_dir(self.dir)  # the file's name survives a power cut, not just a SIGKILL
        self._fd, self._path = fd, path

    def _detach_current(self) -> Claimed | None:
        if self._fd is None or self._path is None:
            return None
        claimed = Claimed(self._path, self._fd)
        self._fd = self._path = None
        return claimed

    def claim(self, *, skip: Sequence[Path] = ()) -> list[Claimed]:
        """Take over every file that holds events and no live process is writing: our own
        current file (rotated: new appends go to a new file) and any dead process's files."""
        claimed: list[Claimed] = []
        with self._lock:
            own = self._detach_current()
        if own is not None:
            claimed.append(own)
        try:
            names = sorted(p for p in self.dir.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            names = []
        held = {c.path for c in claimed} | set(skip)
        for path in names:
            if path in held:
                continue
            try:
                taken = self._take_over(path)
            except OSError as exc:  # unreadable (permissions?): leave it, say so, go on
                logger.error("gateway: spool %s cannot be taken over: %r", path, exc)
                continue
            if taken is not None:
                claimed.append(taken)
        return claimed

    def _take_over(self, path: Path) -> Claimed | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None  # another process took it (renamed) a moment ago
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live process holds it (its owner, or a replayer)
            return None
        mine = self._new_name()
        try:
            # The lock proves the owner is dead; the rename makes the file ours alone: if
            # another replayer renamed it first (and maybe deleted it), this raises.
            os.rename(path, mine)
        except FileNotFoundError:
            os.close(fd)
            return None
        return Claimed(mine, fd)

    def discard(self, item: Claimed) -> None:
        """The events are in Redis: delete the file, then drop the lock."""
        try:
            item.path.unlink(missing_ok=True)
        finally:
            os.close(item.fd)

    def close(self) -> None:
        """Release the lock on the current file (left on disk: the next process replays it)."""
        with self._lock:
            current = self._detach_current()
        if current is not None:
            os.close(current.fd)


def read_events(path: Path) -> list[bytes]:
    with open(path, "rb") as f:  # a new descriptor: the locked one may be write-only
        data = f.read()
    lines = data.split(b"\n")
    torn = lines.pop()  # after the last newline: empty, or a write cut short (never answered)
    if torn:
        logger.warning("gateway: spool %s: ignoring a torn last line (%d bytes)", path, len(torn))
    events = []
    for line in lines:
        if not line:
            continue
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            logger.error("gateway: spool %s: skipping an unreadable line: %r", path, line[:200])
            continue
        events.append(line)
    return events


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def replay_once(
    spool: Spool, redis: Any, pending: list[Claimed], replicas: Any = None
) -> int:
    """Claim what is spooled, XADD it to the usage stream, delete the files; returns how many
    events were deleted. A file whose push fails stays claimed (in `pending`) for the next try.

    With `replicas` (`replication.ReplicaWait`, `ALEPHANT_REDIS_WAIT_REPLICAS` on) a file is
    deleted only once the replicas hold its events too: until then it stays claimed, and each
    round asks again. It is pushed again only when the master lost it (a failover to a replica
    that never had it: `replicas.holds` says so), never once a round (the wait can last as long
    as a replica is away).

    A crash between the XADD and the delete pushes the same events again on the next replay:
    harmless, the ledger writer stores one row per request id (`ON CONFLICT DO NOTHING`)."""
    skip = [item.path for item in pending]
    pending.extend(await asyncio.to_thread(spool.claim, skip=skip))
    if not pending:
        return 0
    if replicas is not None and not await replicas.holds(redis):
        for item in pending:
            item.pushed = False
    for item in pending:
        if not item.pushed:
            await _push(spool, redis, item, replicas)
    if replicas is not None and not await replicas.replay_acknowledged(redis):
        return 0  # kept, claimed: the next round asks again
    done = 0
    while pending:
        item = pending.pop(0)  # before the delete: if that fails, the unlocked file is replayed
        await asyncio.to_thread(spool.discard, item)
        assert item.events is not None
        done += len(item.events)
        if item.events:
            logger.warning(
                "gateway: replayed %d spooled usage events from %s", len(item.events), item.path
            )
    return done


async def _push(spool: Spool, redis: Any, item: Claimed, replicas: Any) -> None:
    if item.events is None:
        item.events = await asyncio.to_thread(read_events, item.path)
    for start in range(0, len(item.events), REPLAY_BATCH):
        pipe = redis.pipeline(transaction=False)
        for raw in item.events[start : start + REPLAY_BATCH]:
            pipe.xadd(stream_of(raw, spool.stream), {"e": raw})
        mark = replicas.mark(pipe) if replicas is not None else None
        await pipe.execute()
        if mark is not None:
            replicas.marked(mark)  # only now: a pipeline that failed left the old mark standing
    item.pushed = True


async def replay_forever(
    spool: Spool,
    redis: Any,
    *,
    replicas: Any = None,
    interval: float = REPLAY_INTERVAL_S,
    backoff: Backoff | None = None,
) -> None:
    """The runtime's background task: replay every `interval` s; on failure wait with backoff.
    Never dies on an error (only on cancellation, at shutdown)."""
    backoff = backoff or Backoff(initial=interval, maximum=2.0)
    pending: list[Claimed] = []
    try:
        while True:
            try:
                await replay_once(spool, redis, pending, replicas)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis still down, disk trouble: try again later
                delay = backoff.failure()
                logger.warning("gateway: spool replay failed (%r); next try in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.healthy()
            await asyncio.sleep(interval)
    finally:
        for item in pending:  # unlock: the files stay on disk for the next process to replay
            os.close(item.fd)


async def drain(spool: Spool, redis: Any, *, replicas: Any = None, timeout_s: float = 2.0) -> None:
    """At shutdown, after the loop stopped: one last bounded replay. Whatever is left stays on
    disk, unlocked, for the next gateway on the same spool directory."""
    pending: list[Claimed] = []
    try:
        await asyncio.wait_for(replay_once(spool, redis, pending, replicas), timeout_s)
    except Exception as exc:  # Redis still down: the files wait for the next process
        logger.warning("gateway: spool left on disk at shutdown (%r): %s", exc, spool.dir)
    finally:
        for item in pending:
            os.close(item.fd)
