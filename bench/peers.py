"""The peers of `PEERS=1 make bench`: LiteLLM's proxy and Portkey's OSS gateway, against the same
nginx mock in the same run. Each lives in its own environment under `.bench/` (a venv, an npm
prefix), never in the project's lock; installs happen only here, once, and a peer whose install or
start fails is skipped with a message instead of failing the bench."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.gateway.servers import Proc, free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
LITELLM_VENV = BENCH_DIR / "litellm"
PORTKEY_DIR = BENCH_DIR / "portkey"
PORTKEY_START = PORTKEY_DIR / "node_modules/@portkey-ai/gateway/build/start-server.js"
PREFIX = {"json": "json", "stream": "sse", "paced": "paced"}  # bench mode -> mock path
# The versions README's table was measured with (the too); `BENCH_LITELLM` and
# `BENCH_PORTKEY` name others (e.g. `litellm[proxy]` for the newest) for a fresh `.bench/`.
LITELLM = os.environ.get("BENCH_LITELLM", "litellm[proxy]==1.108.7")
PORTKEY = os.environ.get("BENCH_PORTKEY", "@portkey-ai/gateway@1.15.2")


@dataclass
class Peer:
    name: str
    proc: Proc
    port: int
    version: str
    key: str = "sk-bench"

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def where(self, mode: str, upstream: str) -> tuple[str, dict[str, str], str]:
        """URL, headers and the `model` the request names, for one bench mode."""
        url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        headers = {"content-type": "application/json", "authorization": f"Bearer {self.key}"}
        if self.name == "litellm":
            return url, headers, f"bench-{mode}"  # one model_list entry per mock path
        headers["x-portkey-provider"] = "openai"
        headers["x-portkey-custom-host"] = f"{upstream}/{PREFIX[mode]}/v1"
        return url, headers, "gpt-4o-mini"


def _logged(cmd: list[str], log: Path) -> list[str]:
    """`cmd` with its stderr appended to `log` (Portkey prints a stack trace per failed call)."""
    return ["sh", "-c", 'exec "$@" 2>>"$LOG"'.replace("$LOG", str(log)), "sh", *cmd]


def _install(what: str, cmd: list[str], cwd: Path) -> bool:
    print(f"[bench] installing {what} under {cwd.relative_to(ROOT)} (once)", flush=True)
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        print(f"[bench] skipping {what}: install failed: {' / '.join(tail)}", flush=True)
    return done.returncode == 0


def _litellm_config(upstream: str, tmp: Path) -> Path:
    entries = "".join(
        f"  - model_name: bench-{mode}\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream}/{prefix}/v1\n      api_key: sk-bench-upstream\n"
        for mode, prefix in PREFIX.items()
    )
    path = tmp / "litellm.yaml"
    path.write_text(
        "model_list:\n" + entries + "litellm_settings:\n  drop_params: true\n  telemetry: false\n"
    )
    return path


def _start_litellm(upstream: str, tmp: Path) -> Peer | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        if not (LITELLM_VENV / "bin" / "pip").exists():
            venv = [sys.executable, "-m", "venv", str(LITELLM_VENV)]
            if subprocess.run(venv, capture_output=True).returncode:
                print("[bench] skipping litellm: could not create its venv", flush=True)
                return None
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", LITELLM]
        if not _install(LITELLM, pip, LITELLM_VENV) or not binary.exists():
            return None
    version = subprocess.run(
        [str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m;"
         "print(m.version('litellm'))"], capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    # Offline cost map (it would try GitHub at start), and no database, as in the table:
    # LiteLLM's load_dotenv() walks up from its package to our `.env` (and its DATABASE_URL).
    env = dict(os.environ, LITELLM_LOG="ERROR", LITELLM_LOCAL_MODEL_COST_MAP="True")
    env["PYTHON_DOTENV_DISABLED"] = "1"
    # It refuses to start without one; a master-key check is also the closest to our key auth.
    env["LITELLM_MASTER_KEY"] = key = "sk-" + secrets.token_hex(32)
    for name in [n for n in env if "DATABASE" in n]:
        env.pop(name)
    cmd = [str(binary), "--config", str(_litellm_config(upstream, tmp)), "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--num_workers", "1"]
    proc = Proc(_logged(cmd, tmp / "litellm.log"), env, "litellm").start()
    return Peer("litellm", proc, port, version, key)


def _start_portkey(tmp: Path) -> Peer | None:
    if not PORTKEY_START.exists():
        npm = ["npm", "install", "--no-audit", "--no-fund", PORTKEY]
        if not _install(PORTKEY, npm, PORTKEY_DIR) or not PORTKEY_START.exists():
            return None
    package = PORTKEY_DIR / "node_modules/@portkey-ai/gateway/package.json"
    version = package.read_text().split('"version"', 1)[1].split('"')[1]
    port = free_port()
    cmd = ["node", str(PORTKEY_START), f"--port={port}", "--headless"]
    proc = Proc(_logged(cmd, tmp / "portkey.log"), dict(os.environ), "portkey").start()
    return Peer("portkey", proc, port, version)


def start_peers(upstream: str, tmp: Path) -> list[Peer]:
    """Install (when missing) and start both peers; the ones that came up, ready."""
    peers = []
    for start in (lambda: _start_litellm(upstream, tmp), lambda: _start_portkey(tmp)):
        peer = start()
        if peer is None:
            continue
        try:
            # Any HTTP answer means it is listening (LiteLLM's first start takes ~10-30 s).
            wait_http(f"http://127.0.0.1:{peer.port}/", timeout=120, proc=peer.proc)
        except (TimeoutError, RuntimeError) as exc:
            print(f"[bench] skipping {peer.name}: did not come up ({exc})", flush=True)
            peer.proc.kill()
            continue
        peers.append(peer)
    return peers
