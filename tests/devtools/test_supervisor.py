"""`make run`'s restart policy, with real (tiny) child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
        run_for(supervisor, 3.0)
        assert steady.proc.poll() is None and steady.proc.pid == steady_pid  # untouched
        # Waits 0.05, 0.1, 0.2, 0.4, 0.4 ... plus an interpreter start-up per run.
        assert 3 <= crasher.starts <= 15, crasher.starts
        waits = [float(line.split()[-2]) for line in lines if "restarting in" in line]
        assert waits[:3] == [0.05, 0.1, 0.2] and max(waits) <= 0.4
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


SUPERVISE = """
import sys
from core.backoff import Backoff
from devtools.supervisor import Child, Supervisor

pidfile = sys.argv[1]
steady = [sys.executable, "-c", f"import os, time; open({pidfile!r}, 'w').write(str(os.getpid())); time.sleep(60)"]
crash = [sys.executable, "-c", "import sys; sys.exit(1)"]
Supervisor([
    Child("steady", steady),
    Child("crasher", crash, backoff=Backoff(initial=0.05, maximum=0.2)),
]).run_until_signalled()
"""


def test_ctrl_c_stops_the_supervisor_and_every_child(tmp_path):
    pidfile = tmp_path / "steady.pid"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, str(pidfile)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline and supervisor.poll() is None
            time.sleep(0.05)
        time.sleep(1.2)  # the crasher is restarted (each run costs an interpreter start)
        assert supervisor.poll() is None  # one crashing child stops nothing
        supervisor.send_signal(signal.SIGINT)
        out, _err = supervisor.communicate(timeout=20)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0
    assert out.count("[run] crasher exited with 1; restarting") >= 2
    steady_pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(steady_pid, 0)  # stopped and reaped by the supervisor
