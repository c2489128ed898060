"""Demo traffic: drive simulated calls through the real gateway into the local simulator.

    python -m devtools.demo_traffic [--gateway http://127.0.0.1:8000/v1] [--rate 3] [--duration 0]

Run by `make run` after `seed_demo` (which writes the demo gateway keys to
`.run/demo_keys.json`). Members chat with several models; agents run multi-step sessions
(`Alephant-Session-Id`); `research-looper` keeps re-asking the same question in one session,
so the loop breaker and its $5/day cap fire and the dashboard shows the block and the alerts.
No Django here: it is just an HTTP client, like the SDKs it stands in for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

KEYS_FILE = Path(__file__).resolve().parent.parent / ".run" / "demo_keys.json"
TOPICS = (
    "quarterly revenue",
    "a flaky test",
    "the onboarding email",
    "GPU pricing",
    "a refund request",
    "the API changelog",
    "churn in EMEA",
    "a slow SQL query",
    "vector databases",
    "the holiday rota",
    "the incident report",
    "a pricing page",
)


@dataclass
class Actor:
    key_name: str
    models: tuple[str, ...]
    weight: int
    api: str = "chat"  # chat | messages
    session_steps: int = 0  # > 0: an agent run of this many steps
    looping: bool = False
    tokens: tuple[int, int] = (80, 400)
    state: dict = field(default_factory=dict)


ACTORS = (
    Actor("demo-dev1", ("gpt-4o", "gpt-4o-mini"), 5),
    Actor("demo-dev2", ("gpt-4o-mini",), 6),
    Actor("demo-analyst", ("claude-sonnet-4-20250514",), 3, api="messages", tokens=(200, 900)),
    Actor("demo-admin", ("gpt-4o-mini", "claude-3-5-haiku-latest"), 2),
    Actor("demo-agent-support-bot", ("claude-3-5-haiku-latest",), 6, session_steps=5),
    Actor("demo-agent-code-reviewer", ("gpt-4o",), 3, session_steps=3, tokens=(150, 600)),
    Actor(
        "demo-agent-research-looper",
        ("claude-sonnet-4-20250514",),
        4,
        session_steps=40,
        looping=True,
        tokens=(400, 1200),
    ),
)


def _prompt(actor: Actor, rng: random.Random) -> str:
    if actor.looping:  # the same question every step: a loop the gateway can recognise
        return "Find every paper about budget guardrails and summarise them. Are you sure?"
    return f"Please help with {rng.choice(TOPICS)} (#{rng.randint(1, 10_000)})."


def build_request(actor: Actor, rng: random.Random) -> tuple[str, dict, dict]:
    """(path, JSON body, extra headers) of the actor's next call."""
    model = rng.choice(actor.models)
    # A looping agent sends byte-identical requests (same fingerprint); others vary.
    n_out = actor.tokens[1] if actor.looping else rng.randint(*actor.tokens)
    text = f"{_prompt(actor, rng)} [[sim:tokens={n_out}]]"
    if not actor.looping and rng.random() < 0.15:
        text += " [[sim:cached=500]]"
    headers: dict[str, str] = {}
    if actor.session_steps:
        session = actor.state.get("session")
        if session is None or actor.state.get("step", 0) >= actor.session_steps:
            session = f"{actor.key_name.removeprefix('demo-agent-')}-{uuid.uuid4().hex[:8]}"
            actor.state.update(session=session, step=0)
        actor.state["step"] = actor.state.get("step", 0) + 1
        headers["Alephant-Session-Id"] = session
        headers["Alephant-Session-Name"] = f"{actor.key_name.removeprefix('demo-agent-')} run"
        headers["Alephant-Session-Path"] = f"/step-{actor.state['step']}"
    headers["Alephant-Property-env"] = "prod" if actor.looping or rng.random() < 0.7 else "dev"
    if actor.api == "messages":
        body = {
            "model": model,
            "max_tokens": n_out + 50,
            "messages": [{"role": "user", "content": text}],
        }
        return "/messages", body, headers
    body = {
        "model": model,
        "max_tokens": n_out + 50,
        "messages": [{"role": "user", "content": text}],
    }
    return "/chat/completions", body, headers


def end_session(actor: Actor) -> None:
    actor.state.pop("session", None)


async def _wait_ready(client: httpx.AsyncClient, gateway: str, deadline: float) -> None:
    root = gateway.rsplit("/v1", 1)[0]
    while time.monotonic() < deadline:
        try:
            if (await client.get(f"{root}/healthz", timeout=2)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1)
    raise SystemExit(f"[traffic] gateway {gateway} is not answering")


async def run(
    *,
    gateway: str,
    keys: dict[str, str],
    rate: float,
    duration: float,
    seed: int | None = None,
    verbose: bool = True,
) -> Counter:
    """Send about `rate` calls per second for `duration` seconds (0: until stopped)."""
    rng = random.Random(seed)
    actors = [a for a in ACTORS if a.key_name in keys]
    if not actors:
        raise SystemExit("[traffic] no demo keys: run `python manage.py seed_demo` first")
    weights = [a.weight for a in actors]
    stats: Counter = Counter()
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        await _wait_ready(client, gateway, started + 120)
        in_flight: set[asyncio.Task] = set()

        async def one(actor: Actor) -> None:
            path, body, headers = build_request(actor, rng)
            headers["Authorization"] = f"Bearer {keys[actor.key_name]}"
            try:
                response = await client.post(path, json=body, headers=headers)
                stats[response.status_code] += 1
                if response.status_code in (402, 429) and actor.looping:
                    end_session(actor)  # blocked or loop broken: the agent starts over
            except httpx.HTTPError as exc:
                stats[type(exc).__name__] += 1

        last_report = started
        while duration <= 0 or time.monotonic() - started < duration:
            actor = rng.choices(actors, weights)[0]
            task = asyncio.create_task(one(actor))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            await asyncio.sleep(rng.expovariate(rate) if rate > 0 else 1)
            if verbose and time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                print(f"[traffic] {sum(stats.values())} calls: {dict(stats)}", flush=True)
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Alephant demo traffic driver")
    port = os.environ.get("PORT", "8000")
    parser.add_argument(
        "--gateway", default=os.environ.get("ALEPHANT_GATEWAY_URL", f"http://127.0.0.1:{port}/v1")
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=float(os.environ.get("ALEPHANT_DEMO_RATE", "2")),
        help="calls per second",
    )
    parser.add_argument("--duration", type=float, default=0, help="seconds; 0 = until stopped")
    parser.add_argument("--keys", default=str(KEYS_FILE))
    args = parser.parse_args(argv)
    try:
        keys = json.loads(Path(args.keys).read_text())
    except OSError:
        sys.exit(f"[traffic] {args.keys} not found: run `python manage.py seed_demo` first")
    print(f"[traffic] driving demo calls at ~{args.rate}/s through {args.gateway}", flush=True)
    try:
        stats = asyncio.run(
            run(gateway=args.gateway.rstrip("/"), keys=keys, rate=args.rate, duration=args.duration)
        )
    except KeyboardInterrupt:
        return
    print(f"[traffic] done: {dict(stats)}", flush=True)


if __name__ == "__main__":
    main()
