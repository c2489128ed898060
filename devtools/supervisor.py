"""The restart policy of `make run` (`devtools/run.py`): a child that exits is started again.

A crashed child waits 0.5 s, then 1, 2, 4 ... up to 30 s between restarts (`core.backoff`), and
the wait starts again from 0.5 s once the child has stayed up for a minute; one dead process
(a ledger writer that lost Redis, a worker killed by the OOM killer) no longer stops the stack.
Children marked `restart=False` (the demo traffic, which may finish on its own) are left
stopped. Only `stop_all` (Ctrl-C, SIGTERM) stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.backoff import Backoff


def default_backoff() -> Backoff:
    return Backoff(initial=0.5, maximum=30.0, reset_after=60.0)


@dataclass
class Child:
    name: str
    cmd: list[str]
    restart: bool = True
    backoff: Backoff = field(default_factory=default_backoff)
    proc: subprocess.Popen | None = None
    restart_at: float | None = None  # monotonic time of the scheduled restart
    starts: int = 0


class Supervisor:
    def __init__(
        self,
        children: list[Child],
        *,
        cwd: Path | str | None = None,
        log: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.children = children
        self.cwd = cwd
        self.log = log

    def _start(self, child: Child) -> None:
        # Own session: Ctrl-C reaches only this supervisor, which then stops each group itself.
        child.proc = subprocess.Popen(child.cmd, cwd=self.cwd, start_new_session=True)
        child.restart_at = None
        child.starts += 1
        child.backoff.healthy()

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def tick(self, now: float | None = None) -> None:
        """Notice exited children and start those whose backoff has elapsed."""
        now = time.monotonic() if now is None else now
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self.log(f"[run] restarting {child.name}")
                    self._start(child)
                continue
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            if not child.restart:
                self.log(f"[run] {child.name} exited with {code}; not restarted")
                child.proc = None
                continue
            delay = child.backoff.failure()
            child.restart_at = now + delay
            self.log(f"[run] {child.name} exited with {code}; restarting in {delay:g} s")

    def run(self, should_stop: Callable[[], bool], interval: float = 0.2) -> None:
        self.start_all()
        try:
            while not should_stop():
                self.tick()
                time.sleep(interval)
        finally:
            self.stop_all()

    def run_until_signalled(self) -> None:
        """`run` until SIGINT (Ctrl-C) or SIGTERM, then stop every child."""
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_args: stopping.set())
        self.run(stopping.is_set)

    def stop_all(self, timeout: float = 10.0) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # it exited between the poll and the signal
