"""Redis-side instructions per admit and per settle, A vs B:
`python -m bench.redis_instructions --ref <before> [--b-ref HEAD] [--calls 300]`.

The enforcement scripts run inside Redis, which on a 2-core box competes with the gateway for
CPU. Each tree (A: git `--ref`; B: `--b-ref`, or the working tree) drives its own private
`redis-server` under `valgrind --tool=callgrind` (instrumentation off until warm) with the
tree's own `Enforcer` over the gateway's `RespClient`, 5 money budgets on the chain + rate cap
+ loop counter (as `make bench` seeds them), each settle carrying a ~900-byte usage event:
`--calls` admits in a row, then their settles (admit and settle apart), then `--calls`
admit-settle pairs as the gateway makes them. Counted: the instructions inside EVALSHA
(callgrind_annotate, inclusive; repeatable to ~0.1 %), and for the pairs the whole redis-server
too (which also counts its timers: serverCron runs by wall time, so it moves with the load).
The client side is timed as CPU time, best of 5: building the admit arguments
(`Enforcer._admit_call`), reading an admit's answer into the handle (`Enforcer._admitted`), and
a settle whose round trip a stand-in answers at once; still noisy on a loaded box.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ab import _archive
from tests.gateway.servers import ROOT, free_port

# Runs with PYTHONPATH=<tree>: only what every tree being compared has.
DRIVER = r"""
import asyncio, subprocess, sys, time
from gateway.hotpath.admission import AdmitRequest
from gateway.hotpath.enforcer import Enforcer
from gateway.hotpath.resp import RespClient

port, pid, calls = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
WS = 4242
SCOPES = [("key", 1), ("agent", 1), ("member", 1), ("department", 1), ("workspace", WS)]
budgets = [
    {"id": 900 + i, "scope_type": s, "scope_id": sid, "metric": "usd",
     "limit": 10**15, "period": "lifetime", "ladder": [50, 75, 90, 100], "throttle_at": None,
     "throttle_rpm": None, "hard_stop": True, "model": None}
    for i, (s, sid) in enumerate(SCOPES)
]
workspace = {"v": 1, "workspace_id": WS, "time_zone": "UTC", "rpm_floor": 2_000_000_000,
             "budgets": budgets, "settings": {}}
key = {"rpm": 2_000_000_000, "tpm": None}
EVENT = b'{"request_id":"%s","workspace_id":4242,"pad":"' + b"x" * 820 + b'"}'

def ctl(*flags):
    for flag in flags:
        subprocess.run(["callgrind_control", *flag.split(), pid], capture_output=True, check=True)

async def zeros(_ws, items):
    return [0] * len(items)

def request(i):
    return AdmitRequest(
        request_id=f"req-{i:08d}-0123456789abcdef", workspace_id=WS, key_id=1, member_id=1,
        department_id=1, agent_id=1, provider="openai", model="gpt-4o-mini",
        estimated_input_tokens=30, max_output_tokens=64, reserve_nanos=123_456,
        fingerprint="f%06d" % (i % 1000), session_id=None)

async def main():
    enforcer = Enforcer(RespClient(port=port), loader=zeros)
    async def pair(i):
        adm = await enforcer.admit(request(i), workspace, key)
        assert adm.allowed, adm.message
        return adm
    for i in range(20):  # warm: counters rebuilt, scripts loaded
        adm = await pair(i)
        await enforcer.settle(adm, cost_nanos=1000, tokens=50, usage=[EVENT % b"w%d" % i])
    ctl("-z", "-i on")
    admitted = [await pair(100 + i) for i in range(calls)]
    ctl("-i off", "-d")
    ctl("-z", "-i on")
    for i, adm in enumerate(admitted):
        assert await enforcer.settle(
            adm, cost_nanos=98_765 + i, tokens=94, usage=[EVENT % (b"r%d" % i)])
    ctl("-i off", "-d")
    ctl("-z", "-i on")  # as the gateway does: each admit settled before the next
    for i in range(calls):
        adm = await pair(10_000 + i)
        await enforcer.settle(adm, cost_nanos=98_765, tokens=94, usage=[EVENT % (b"p%d" % i)])
    ctl("-i off", "-d")
    # The client side alone: the admit arguments, and a settle's (its round trip answered at
    # once by a stand-in for the batcher), best of 5 x 2000, in us.
    class Answered:
        async def call(self, script, keys, args):
            return 1
    real, enforcer._batcher = enforcer._batcher, Answered()
    req = request(1)
    from gateway.hotpath.budgets import chain_for
    chain = chain_for(req, workspace, enforcer._periods, "UTC", time.time())
    call = enforcer._admit_call(req, workspace, key, chain, 1.0e9)
    answer = [b"ok", 5, 1, 0, b"member"] + [b"0123456789ab"] * len(chain.counted)
    build, handle = [], []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(2000):
            enforcer._admit_call(req, workspace, key, chain, 1.0e9)
        t1 = time.process_time()
        for _ in range(2000):
            enforcer._admitted(req, call, chain, answer)
        build.append((t1 - t0) / 2000 * 1e6)
        handle.append((time.process_time() - t1) / 2000 * 1e6)
    settle = []
    for _ in range(5):
        t0 = time.process_time()
        for adm in admitted[:2000]:
            adm.handle.done = False
            await enforcer.settle(adm, cost_nanos=98_765, tokens=94, usage=[EVENT % b"x"])
        settle.append((time.process_time() - t0) / min(2000, len(admitted)) * 1e6)
    print(min(build), min(handle), min(settle))

asyncio.run(main())
"""


def _dump_counts(tmp: Path) -> list[tuple[int, int]]:
    """(inside EVALSHA, whole process) instructions of each non-empty dump, oldest first. The
    whole process also counts Redis' timers (serverCron runs by wall time, and a loaded box
    stretches a run), so the EVALSHA figure is the repeatable one."""
    counts = []
    for out in sorted(tmp.glob("cg.out.*"), key=lambda p: p.stat().st_mtime):
        total = next(
            (int(x.split()[1]) for x in out.read_text().splitlines() if x.startswith("totals:")), 0
        )
        if not total:
            continue
        annotated = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", str(out)], capture_output=True, text=True
        ).stdout
        evalsha = next(
            int(x.split()[0].replace(",", ""))
            for x in annotated.splitlines()
            if x.rstrip().endswith("]") and ":evalShaCommand " in x
        )
        counts.append((evalsha, total))
    return counts


def measure(tree: Path, calls: int) -> tuple[float, ...]:
    """(admit, settle) instructions inside EVALSHA per call, the same for the whole Redis
    process, and the client side's us for each (the admit arguments; a settle without its
    round trip)."""
    tmp, port = Path(tempfile.mkdtemp(prefix="alephant-rcg-")), free_port()
    redis = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
         f"--callgrind-out-file={tmp}/cg.out.%p", "redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(600):
            ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
            if ping.stdout.strip() == b"PONG":
                break
            time.sleep(0.1)
        out = subprocess.run(
            [sys.executable, "-c", DRIVER, str(port), str(redis.pid), str(calls)],
            cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1"),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        counts = _dump_counts(tmp)
        cpu_admit, cpu_handle, cpu_settle = (float(x) for x in out.stdout.split())
    finally:
        redis.terminate()
        redis.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    (admit, _), (settle, _), (pair, pair_all) = ((a / calls, b / calls) for a, b in counts[-3:])
    print(f"  {tree.name}: admit {admit:,.0f}  settle {settle:,.0f}  pair {pair:,.0f} instructions")
    return admit, settle, pair, pair_all, cpu_admit, cpu_handle, cpu_settle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default="HEAD")
    parser.add_argument("--b-ref", default="")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    a_tree = _archive(args.ref)
    b_tree = _archive(args.b_ref) if args.b_ref else ROOT
    try:
        a, b = measure(a_tree, args.calls), measure(b_tree, args.calls)
    finally:
        shutil.rmtree(a_tree, ignore_errors=True)
        if b_tree is not ROOT:
            shutil.rmtree(b_tree, ignore_errors=True)
    print(f"\nRedis instructions per call (callgrind on redis-server, {args.calls} calls,")
    print("5 budgets + rate cap, ~900-byte usage event); client-side us (timing: noisy)")
    print(f"A = {args.ref}; B = {args.b_ref or 'working tree'}\n")
    print("| | A | B | change |\n|---|---|---|---|")
    names = ("admit, EVALSHA instr.", "settle, EVALSHA instr.",
             "admit + settle pair, EVALSHA instr.", "pair, whole redis-server instr.",
             "admit args, client us", "admit answer -> handle, client us",
             "settle w/o round trip, client us")  # fmt: skip
    for name, x, y in zip(names, a, b, strict=True):
        print(f"| {name} | {x:,.1f} | {y:,.1f} | {y / x - 1:+.1%} |")


if __name__ == "__main__":
    main()
