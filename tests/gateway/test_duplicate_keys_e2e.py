"""A client repeats `model` and `max_tokens` in one body, hoping the upstream reads them the other
way than the gateway: we parse last-wins (orjson), but a server written by someone else may keep
the first value and run a dearer model, or a longer answer, than was reserved and priced.

Through a real gateway to an upstream that parses first-wins: it must see each key once, with
the values that were priced, and the ledger must record that model at that model's price."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import orjson
import pytest
from aiohttp import web

from tests.gateway.upstreams import ThreadedUpstream, provider_keys_point_at, running

pytestmark = pytest.mark.slow

PRICES = {"gpt-4o": Decimal("10"), "gpt-4o-mini": Decimal("0.60")}  # USD per 1M output tokens


class FirstWinsUpstream(ThreadedUpstream):
    """OpenAI-compatible; reads a repeated key's FIRST value and records what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        pairs = json.loads(await request.read(), object_pairs_hook=lambda kv: kv)
        keys = [k for k, _v in pairs]
        body = dict(reversed(pairs))  # first wins
        self.seen.append({"body": body, "repeated": len(keys) != len(set(keys))})
        output = min(int(body.get("max_tokens", 16)), 1000)
        answer = {
            "id": "chatcmpl-first",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "x"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": output, "total_tokens": 3 + output},
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json")


@pytest.fixture(scope="module")
def first_wins():
    with running(FirstWinsUpstream()) as server:
        yield server


@pytest.fixture
def routed(gw, first_wins):
    from billing.models import PriceOverride
    from gateway.models import ProviderCredential
    from workspaces.tenancy import workspace_scope

    cast = gw.cast
    with workspace_scope(cast.workspace.pk):
        # The only OpenAI key: a bare model name routes here, under the name the client gave.
        ProviderCredential.objects.filter(workspace=cast.workspace, provider="openai").delete()
        for model, price in PRICES.items():
            PriceOverride.objects.create(
                workspace=cast.workspace,
                provider="openai",
                model=model,
                input_per_mtok=Decimal(0),
                output_per_mtok=price,
            )
    provider_keys_point_at(gw, first_wins, families=["openai"], name="firstwins", secret="first")
    first_wins.seen.clear()
    return gw


def test_a_repeated_model_and_limit_reach_the_upstream_as_they_were_priced(routed, first_wins):
    gw = routed
    # The dear model and a long limit first, the cheap model (spelled with an escape) and a
    # short limit last: what the gateway parses, reserves and prices is the last.
    raw = (
        b'{"model":"gpt-4o","max_tokens":1000,'
        b'"messages":[{"role":"user","content":"hi"}],'
        b'"\\u006dodel":"gpt-4o-mini","max_tokens":5}'
    )
    response = httpx.post(
        gw.base + "/chat/completions",
        headers={"authorization": "Bearer " + gw.key, "content-type": "application/json"},
        content=raw,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    [seen] = first_wins.seen
    assert not seen["repeated"]
    assert (seen["body"]["model"], seen["body"]["max_tokens"]) == ("gpt-4o-mini", 5)
    [row] = [r for r in gw.ledger() if r.status_code == 200]
    assert (row.model, row.output_tokens) == ("gpt-4o-mini", 5)
    assert row.cost_usd == 5 * PRICES["gpt-4o-mini"] / 1_000_000
    assert Decimal(response.headers["alephant-cost-usd"]) == row.cost_usd
