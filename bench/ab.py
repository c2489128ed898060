"""A/B of the gateway's hot path in one run: `python -m bench.ab --ref HEAD~1 [--rounds 4]`.

Two gateways side by side against the same nginx upstream and private Redis (`make bench`'s
stack): `A` runs the code of git `--ref` (a `git archive` of it in a temporary directory), `B`
the working tree, or with `--paths` (on a checkout others edit at the same time) `--ref` plus only
those files from the working tree; `--b-ref` compares two commits. Each gets its own 5-budget
key and workspace. Rounds alternate the order (A B, B A, ...), one cell at a time so the two
never run at once; per cell, CPU per call over the gateway worker plus the shared Redis (only
one target is loaded at a time) and RPS at c=64.
Medians, and B's change against A. On a shared box the absolute figures move with the load; the
A/B difference from the same run is what a commit message should quote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from alephant.env import load_dotenv
from bench.__main__ import WORKSPACE_ID, body
from bench.mockstack import MockStack
from bench.peers import PREFIX
from bench.seed import seed_key
from bench.wrk import Cell, run_wrk
from tests.gateway.servers import ROOT, Proc, free_port, wait_http


class _Gateway(Proc):
    """A uvicorn gateway whose code comes from `tree` (its cwd and first sys.path entry)."""

    def __init__(self, tree: Path, port: int, env: dict[str, str], server: str = "uvicorn") -> None:
        cmd = [sys.executable, "-m", "uvicorn", "gateway.asgi:application", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--lifespan", "on", "--log-level", "error",
               "--loop", "uvloop", "--http", "httptools", "--backlog", "4096"]  # fmt: skip
        if server == "granian":  # installed ad hoc (`pip install granian`), not in the lock
            cmd = [str(Path(sys.executable).with_name("granian")), "--interface", "asgi",
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                   "--runtime-mode", "st", "--loop", "uvloop", "--backlog", "4096",
                   "--log-level", "error", "gateway.asgi:application"]  # fmt: skip
        super().__init__(cmd, dict(env, PYTHONPATH=str(tree)), str(tree))
        self.tree, self.port = tree, port

    def start(self) -> _Gateway:
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.tree, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return self


def _archive(ref: str, paths: list[str] | None = None) -> Path:
    tree = Path(tempfile.mkdtemp(prefix="alephant-ab-"))
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    for path in paths or []:  # the working tree's copy of each
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, tree / path)
    return tree


def run(
    ref: str, b: str, paths: list[str], rounds: int, seconds: float, modes: list[str], server: str
) -> None:
    load_dotenv()
    trees = [_archive(ref)]
    if b or paths:
        trees.append(_archive(b or ref, paths))
    stack = MockStack().start()
    env = dict(os.environ, REDIS_URL=stack.redis_url, PYTHONDONTWRITEBYTECODE="1")
    env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "1"
    b_tree = trees[1] if len(trees) > 1 else ROOT
    gateways = {
        "A": _Gateway(trees[0], free_port(), env),
        "B": _Gateway(b_tree, free_port(), env, server),
    }
    secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
    cells: dict[tuple[str, str], list[Cell]] = {}
    try:
        for gw in gateways.values():
            gw.start()
        for gw in gateways.values():
            wait_http(f"http://127.0.0.1:{gw.port}/v1/models", timeout=90, proc=gw)
        where = {}
        for i, (name, mode) in enumerate((g, m) for g in gateways for m in modes):
            key = seed_key(
                redis_url=stack.redis_url, key_hash_secret=secret, ws_id=WORKSPACE_ID + 50 + i,
                base_url=f"{stack.upstream}/{PREFIX[mode]}/v1", budgets=True,
            )  # fmt: skip
            gw = gateways[name]
            assert gw.proc is not None
            where[name, mode] = (
                f"http://127.0.0.1:{gw.port}/v1/chat/completions",
                {"content-type": "application/json", "authorization": f"Bearer {key}"},
                [gw.proc.pid, stack.redis_pid],
            )
        for (_name, mode), (url, headers, pids) in where.items():  # warm up
            run_wrk(url, body=body(mode), headers=headers, connections=64, seconds=2, cpu_pids=pids)
        for round_no in range(rounds):
            order = ("A", "B") if round_no % 2 == 0 else ("B", "A")
            for mode in modes:
                for name in order:
                    url, headers, pids = where[name, mode]
                    cell = run_wrk(
                        url, body=body(mode), headers=headers, connections=64, seconds=seconds,
                        cpu_pids=pids,
                    )  # fmt: skip
                    cells.setdefault((name, mode), []).append(cell)
                    print(
                        f"  round {round_no + 1} {mode:<6} {name} {cell.rps:7.0f} rps"
                        f"  cpu {cell.cpu_ms_per_call:.3f} ms/call  errors {cell.errors}",
                        flush=True,
                    )
    finally:
        for gw in gateways.values():
            gw.kill()
        stack.stop()
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)
    _report(cells, ref, b, paths, rounds, modes)


def _report(
    cells: dict[tuple[str, str], list[Cell]],
    ref: str,
    b: str,
    paths: list[str],
    rounds: int,
    modes: list[str],
) -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    b_name = (
        (b or ref) + (" + " + " ".join(paths) if paths else "") if b or paths else "working tree"
    )
    print(f"\nA = {ref}, B = {b_name}; medians of {rounds} alternating rounds, c=64, 5 budgets")
    print(f"+ rate cap; CPU = gateway worker + Redis per call; load average {load}\n")
    print("| cell | A CPU ms/call | B CPU ms/call | change | A RPS | B RPS | change |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        a_cpu, b_cpu = (statistics.median(c.cpu_ms_per_call for c in cells[n, mode]) for n in "AB")
        a_rps, b_rps = (statistics.median(c.rps for c in cells[n, mode]) for n in "AB")
        print(
            f"| {mode} | {a_cpu:.3f} | {b_cpu:.3f} | {b_cpu / a_cpu - 1:+.1%} "
            f"| {a_rps:,.0f} | {b_rps:,.0f} | {b_rps / a_rps - 1:+.1%} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default="HEAD", help="git ref for A (B: the working tree)")
    parser.add_argument("--b-ref", default="", help="git ref for B instead of the working tree")
    parser.add_argument("--paths", nargs="*", default=[], help="B: --ref + these working files")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--modes", default="json,stream")
    parser.add_argument("--b-server", choices=("uvicorn", "granian"), default="uvicorn")
    args = parser.parse_args()
    modes = args.modes.split(",")
    print(f"A: uvicorn (httptools); B: {args.b_server}", flush=True)
    run(args.ref, args.b_ref, args.paths, args.rounds, args.seconds, modes, args.b_server)


if __name__ == "__main__":
    main()
