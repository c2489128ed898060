"""The tenants and usage events `python -m bench.ingest` feeds the ledger writer: workspaces with
departments, members and agents in the bench database, and events shaped as the gateway writes
them (`gateway.hotpath.call.usage_event`). Runs in a process whose Django settings point at the
bench database."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

WORKSPACES, DEPARTMENTS, MEMBERS, AGENTS = 20, 4, 12, 6
MODELS = (
    ("openai", "gpt-4o-mini", "chat"),
    ("openai", "gpt-4o", "chat"),
    ("openai", "gpt-4.1-mini", "responses"),
    ("openai", "text-embedding-3-small", "embeddings"),
    ("anthropic", "claude-sonnet-4-20250514", "messages"),
    ("anthropic", "claude-3-5-haiku-latest", "messages"),
)


@dataclass
class Tenant:
    workspace_id: int
    members: list[tuple[int, int]]  # (member id, department id)
    agents: list[tuple[int, int, int]]  # (agent id, owner member id, department id)


def tenants() -> list[Tenant]:
    """The bench's workspaces, created once (later runs reuse them)."""
    from django.db import transaction

    from workspaces import system
    from workspaces.models import Agent, Member, Role, User, Workspace
    from workspaces.services.workspaces import (
        agent_create,
        department_create,
        member_add,
        workspace_create,
    )
    from workspaces.tenancy import workspace_scope

    out = []
    for w in range(WORKSPACES):
        with transaction.atomic():
            email = f"owner{w}@ingest.bench.alephant.dev"
            owner = User.objects.filter(email=email).first()
            if owner is None:
                owner = User.objects.create_user(email)
                workspace_create(name=f"Ingest {w}", owner=owner, slug=f"ingest-{w}")
            ws_id = system.user_memberships(owner.pk)[0].workspace_id
            with workspace_scope(ws_id):
                ws = Workspace.objects.get(pk=ws_id)
                if not Agent.objects.exists():
                    depts = [
                        department_create(workspace=ws, name=f"D{i}") for i in range(DEPARTMENTS)
                    ]
                    members = [
                        member_add(
                            workspace=ws,
                            user=User.objects.create_user(f"m{w}-{i}@ingest.bench.alephant.dev"),
                            role=Role.MEMBER,
                            department=depts[i % DEPARTMENTS],
                        )
                        for i in range(MEMBERS)
                    ]
                    for i in range(AGENTS):
                        agent_create(
                            workspace=ws, slug=f"agent-{i}", name=f"Agent {i}",
                            owner=members[i], department=depts[i % DEPARTMENTS],
                        )  # fmt: skip
                members_ = Member.objects.filter(role=Role.MEMBER).order_by("pk")
                agents = Agent.objects.order_by("pk")
                out.append(
                    Tenant(
                        ws.pk,
                        list(members_.values_list("pk", "department_id")),
                        list(agents.values_list("pk", "owner_id", "department_id")),
                    )
                )
    return out


def make_events(
    tenants_: list[Tenant], count: int, *, replays: float, seed: int = 7
) -> list[bytes]:
    """`count` stream entries, `replays` of them repeating an earlier event byte for byte."""
    from gateway.hotpath.usage import encode

    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(tenants_))]  # a few busy workspaces, a long tail
    now = time.time()
    out: list[bytes] = []
    for i in range(count):
        if out and rng.random() < replays:
            out.append(out[rng.randrange(len(out))])
            continue
        t = rng.choices(tenants_, weights)[0]
        member_id, dept_id = rng.choice(t.members)
        agent_id = None
        if rng.random() < 0.4:
            agent_id, member_id, dept_id = rng.choice(t.agents)
        provider, model, endpoint = rng.choice(MODELS)
        tokens_in, tokens_out = rng.randint(20, 6000), rng.randint(0, 1200)
        failed = rng.random() < 0.02
        out.append(
            encode(
                {
                    "request_id": f"req_{rng.getrandbits(96):024x}" + ("-1" if i % 37 == 0 else ""),
                    "workspace_id": t.workspace_id,
                    "gateway_key_id": t.workspace_id * 100 + member_id % 7,
                    "member_id": member_id,
                    "department_id": dept_id,
                    "agent_id": agent_id,
                    "session_id": f"sess_{i // 20:x}" if agent_id else "",
                    "session_path": "/triage/step-2" if agent_id else "",
                    "session_name": "Nightly triage" if agent_id else "",
                    "properties": {"env": "prod", "feature": "search"} if i % 3 else {},
                    "provider": provider,
                    "provider_credential_id": t.workspace_id * 10 + (provider == "anthropic"),
                    "model": model,
                    "endpoint": endpoint,
                    "input_tokens": 0 if failed else tokens_in,
                    "output_tokens": 0 if failed else tokens_out,
                    "cached_tokens": tokens_in // 2 if i % 5 == 0 else 0,
                    "reasoning_tokens": 0,
                    "cost_usd": "0"
                    if failed
                    else f"{(tokens_in * 150 + tokens_out * 600) / 1e9:.12f}",
                    "saved_usd": "0",
                    "cache_hit": i % 50 == 0,
                    "status_code": 429 if failed else 200,
                    "error_type": "rate_limited" if failed else "",
                    "estimated": False,
                    "stream": i % 2 == 0,
                    "latency_ms": rng.randint(200, 9000),
                    "fingerprint": f"{rng.getrandbits(256):064x}",
                    "created_at": now - (count - i) * 0.001,
                }
            )
        )
    return out
