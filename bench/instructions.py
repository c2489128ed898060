"""Instructions per gateway call, A vs B: `python -m bench.instructions --ref HEAD --paths ...`.

CPU time on a shared 2-core box moves with everyone else's load; instruction counts don't. Each
gateway (A: git `--ref`; B: the working tree, or `--ref` plus `--paths` from it, as in
`bench/ab.py`) runs under `valgrind --tool=callgrind` with instrumentation off until it has
warmed up, then counts the instructions of `--calls` sequential calls (c=1: no batching, so the
same work every run) per mode, against `make bench`'s nginx upstream and private Redis, 5 budgets
+ rate cap. Redis' own instructions are not in it (a separate process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from alephant.env import load_dotenv
from bench.__main__ import WORKSPACE_ID, body
from bench.ab import _archive
from bench.mockstack import MockStack
from bench.peers import PREFIX
from bench.seed import seed_key
from tests.gateway.servers import ROOT, free_port, wait_http


def _calls(url: str, key: str, mode: str, n: int) -> None:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    with httpx.Client(timeout=60) as client:
        for i in range(n):
            resp = client.post(url, content=body(mode).replace(b"%d", b"%d" % i), headers=headers)
            resp.read()
            assert resp.status_code == 200, resp.text[:300]


def _total_ir(out: Path) -> int:
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):  # ("summary:" reads 0 in a dump taken on request)
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def measure(tree: Path, stack: MockStack, env: dict, modes: list[str], calls: int) -> dict:
    port, tmp = free_port(), Path(tempfile.mkdtemp(prefix="alephant-cg-"))
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
           f"--callgrind-out-file={tmp}/cg.%p", sys.executable, "-m", "uvicorn",
           "gateway.asgi:application", "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--log-level", "error", "--loop", "uvloop",
           "--http", "httptools"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tree, env=dict(env, PYTHONPATH=str(tree)), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
    result = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=600)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for i, mode in enumerate(modes):
            key = seed_key(
                redis_url=stack.redis_url, key_hash_secret=secret, ws_id=WORKSPACE_ID + 90 + i,
                base_url=f"{stack.upstream}/{PREFIX[mode]}/v1", budgets=True,
            )  # fmt: skip
            _calls(url, key, mode, 30)  # warm: snapshots, credentials, scripts, pools
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True)
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True)
            _calls(url, key, mode, calls)
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True)
            subprocess.run(
                ["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True
            )
            dumps = sorted(tmp.glob("cg.*"), key=lambda p: p.stat().st_mtime)
            result[mode] = _total_ir(dumps[-1]) / calls
            print(
                f"  {tree.name} {mode}: {result[mode]:,.0f} instructions a call ({dumps[-1].name})"
            )
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default="HEAD")
    parser.add_argument("--b-ref", default="")
    parser.add_argument("--paths", nargs="*", default=[])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--modes", default="json,stream")
    args = parser.parse_args()
    load_dotenv()
    modes = args.modes.split(",")
    trees = [_archive(args.ref)]
    if args.b_ref or args.paths:
        trees.append(_archive(args.b_ref or args.ref, args.paths))
    stack = MockStack().start()
    env = dict(os.environ, REDIS_URL=stack.redis_url, PYTHONDONTWRITEBYTECODE="1")
    env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "1"
    try:
        a = measure(trees[0], stack, env, modes, args.calls)
        b = measure(trees[1] if len(trees) > 1 else ROOT, stack, env, modes, args.calls)
    finally:
        stack.stop()
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)
    print(f"\ninstructions per call (callgrind, c=1, {args.calls} calls, gateway process only)")
    print(f"A = {args.ref}; B = {' '.join([args.b_ref, *args.paths]) or 'working tree'}\n")
    print("| mode | A | B | change |\n|---|---|---|---|")
    for mode in modes:
        print(f"| {mode} | {a[mode]:,.0f} | {b[mode]:,.0f} | {b[mode] / a[mode] - 1:+.1%} |")


if __name__ == "__main__":
    main()
