"""One `wrk` run (one thread, keep-alive, a Lua script for the POST body and headers) and the CPU
that the measured processes spent during it (utime + stime from /proc, over each process tree)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")

_LUA = """
wrk.method = "POST"
local template = %s
%s
-- A different body per call, as real traffic is (the gateway's loop breaker would otherwise
-- see one agent repeating itself thousands of times).
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(template, n))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def tree_pids(pid: int) -> list[int]:
    """`pid` and every descendant (uvicorn workers, a supervisor's children)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    todo.extend(int(child) for child in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (plus waited-for children) of each process tree in `pids`."""
    total = 0
    for root in pids:
        for pid in tree_pids(root):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident memory of a process tree (VmRSS), in MB."""
    total = 0
    for each in tree_pids(pid):
        try:
            with open(f"/proc/{each}/status") as fh:
                total += next(int(x.split()[1]) for x in fh if x.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            continue
    return total / 1024


@dataclass
class Cell:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_call(self) -> float:
        return self.cpu_s * 1000 / self.requests if self.requests else float("nan")


def run_wrk(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    cpu_pids: list[int],
) -> Cell:
    header_lines = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(_LUA % (_lua_string(body.decode().replace("%", "%%")), header_lines))
        script = fh.name
    try:
        cmd = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script,
            url,
        ]
        cpu0 = cpu_seconds(cpu_pids)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
        cpu = cpu_seconds(cpu_pids) - cpu0
    finally:
        os.unlink(script)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))
    requests, duration_us, errors, p50_us, p99_us = (int(x) for x in line.split()[1:])
    return Cell(
        requests=requests - errors,
        errors=errors,
        seconds=duration_us / 1e6,
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        cpu_s=cpu,
    )
