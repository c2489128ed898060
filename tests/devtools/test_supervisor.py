"""`make run`'s restart policy, with real (tiny) child processes."""

from __future__ import annotations

import sys
import time

from core.backoff import Backoff
from devtools.supervisor import Child, Supervisor

CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, maximum=0.4, reset_after=60.0)


def run_for(supervisor: Supervisor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        supervisor.tick()
        time.sleep(0.01)


def test_a_crashing_child_is_restarted_with_growing_waits_and_the_rest_keeps_running():
    lines: list[str] = []
    crasher = Child("crasher", CRASH, backoff=fast_backoff())
    steady = Child("steady", SLEEP, backoff=fast_backoff())
    supervisor = Supervisor([crasher, steady], log=lines.append)
    supervisor.start_all()
    steady_pid = steady.proc.pid
    try:
        run_for(supervisor, 2.5)
        assert steady.proc.poll() is None and steady.proc.pid == steady_pid  # untouched
        # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... plus ~50 ms of interpreter start-up per run.
        assert 4 <= crasher.starts <= 12, crasher.starts
        waits = [float(line.split()[-2]) for line in lines if "restarting in" in line]
        assert waits[:4] == [0.05, 0.1, 0.2, 0.4] and max(waits) == 0.4
        assert "[run] crasher exited with 3; restarting in 0.05 s" in lines
    finally:
        supervisor.stop_all(timeout=5)
    assert steady.proc.poll() is not None  # Ctrl-C (stop_all) still stops everyone


def test_a_child_marked_no_restart_stays_stopped():
    lines: list[str] = []
    once = Child("traffic", CRASH, restart=False)
    supervisor = Supervisor([once], log=lines.append)
    supervisor.start_all()
    run_for(supervisor, 1.0)
    assert once.starts == 1 and once.proc is None
    assert lines == ["[run] traffic exited with 3; not restarted"]


def test_run_stops_every_child_when_asked():
    children = [Child(f"c{i}", SLEEP) for i in range(2)]
    supervisor = Supervisor(children, log=lambda _line: None)
    asked = time.monotonic() + 0.5
    supervisor.run(lambda: time.monotonic() > asked, interval=0.05)
    assert all(c.proc is not None and c.proc.poll() is not None for c in children)
