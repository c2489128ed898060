"""Issue 19's scenario through the REAL gateway (uvicorn + upstream simulator + ledger writer):
one member's three agents -- one repeating itself, one on a frontier model for one-liners, one
tidy -- plus a few of the member's own calls. Every dollar is checked against an independent
price computation (`genai_prices` directly) of the usage the simulator reported in each answer,
not against the ledger or the efficiency code."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from django.test import Client
from genai_prices import Usage, calc_price

from efficiency.models import EfficiencyGrade, EfficiencyReport
from tests.cast import build_cast
from tests.gateway.conftest import GW, add_provider_keys, issue_key
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AGENTS = ("looper", "overkiller", "tidy")
FLOOR = "0.000001"  # micro-dollar simulator calls are material above this


@pytest.fixture
def trio(transactional_db, gateway_stack, redis_client, default_floors):
    cast = build_cast()
    add_provider_keys(cast, gateway_stack.sim_url)
    with workspace_scope(cast.workspace.pk):
        # Before the key: the key snapshot lists the agents its member may name.
        for slug in AGENTS:
            agent_create(workspace=cast.workspace, slug=slug, name=slug.title(), owner=cast.member)
    key_obj, raw = issue_key(cast)
    gateway_stack.sim_reset()
    return GW(cast, gateway_stack, raw, key_obj, gateway_stack.gw_url + "/v1")


def _price(model: str, usage: dict) -> Decimal:
    """What the simulator's reported usage costs at catalog prices, computed apart from the
    gateway and the efficiency code."""
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    price = calc_price(
        Usage(
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            cache_read_tokens=cached or None,
        ),
        model_ref=model,
        provider_id="openai",
    )
    return Decimal(str(price.total_price))


class Caller:
    def __init__(self, gw: GW):
        self.gw = gw
        self.calls: list[dict] = []  # request id, who, model, reported usage, independent cost

    def chat(self, content: str, *, model: str = "gpt-4o-mini", agent: str = "", session=""):
        headers = {"authorization": f"Bearer {self.gw.key}"}
        if agent:
            headers["Alephant-Agent"] = agent
        if session:
            headers["Alephant-Session-Id"] = session
        response = httpx.post(
            self.gw.base + "/chat/completions",
            headers=headers,
            json={"model": model, "messages": [{"role": "user", "content": content}]},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        usage = response.json()["usage"]
        self.calls.append({
            "request_id": response.headers["alephant-request-id"], "agent": agent,
            "model": model, "usage": usage, "cost": _price(model, usage),
        })  # fmt: skip

    def of(self, agent: str) -> list[dict]:
        return [c for c in self.calls if c["agent"] == agent]


def _token(member) -> str:
    with workspace_scope(member.workspace_id):
        return api_token_create(member=member, name=member.role)[1]


def _api(method: str, token: str, path: str, **data):
    response = getattr(Client(), method)(
        path, data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _send_traffic(caller: Caller) -> None:
    for _ in range(10):  # the same request again and again, seconds apart, one run
        caller.chat("fix the failing test", agent="looper", session="run-1")
    for i in range(10):  # a frontier model for one-liners its cheap sibling answers
        caller.chat(f"one-line question {i}?", model="gpt-4o", agent="overkiller")
    for i in range(8):  # distinct requests, right-sized model, a few steps per session
        caller.chat(f"a varied request about topic {i}", agent="tidy", session=f"t{i // 4}")
    for i in range(4):  # the member's own calls, no agent
        caller.chat(f"my own distinct question number {i}")


def test_three_agents_through_the_gateway_graded_in_dollars(trio):
    gw, caller = trio, Caller(trio)
    admin, finance = _token(gw.cast.admin), _token(gw.cast.finance)
    _send_traffic(caller)
    rows = {r.request_id: r for r in gw.ledger()}  # drains the usage stream into the ledger
    assert len(rows) == len(caller.calls) == 32

    # Pennies are not graded: under the default floors ($1 / 0.5 % of spend) this
    # sub-cent traffic gets no grade and no verdict, for agents and the member alike.
    _api("post", finance, "/api/v1/efficiency/recompute/", period="week")
    for kind in ("agent", "member"):
        listed = _api("get", finance, f"/api/v1/efficiency?entity_kind={kind}")["results"]
        assert listed and all(not g["graded"] for g in listed), listed
    _api("put", admin, "/api/v1/efficiency/settings/", grade_min_usd=FLOOR, signal_min_usd=FLOOR)
    # The ledger priced exactly what the simulator reported, the called model's price.
    assert {k: r.cost_usd for k, r in rows.items()} == {
        c["request_id"]: c["cost"] for c in caller.calls
    }
    for c in caller.calls:
        assert rows[c["request_id"]].model == c["model"]

    # The avoidable dollars, computed independently.
    loop_waste = sum((c["cost"] for c in caller.of("looper")[1:]), Decimal(0))
    overkill_waste = sum(
        (c["cost"] - _price("gpt-4o-mini", c["usage"]) for c in caller.of("overkiller")),
        Decimal(0),
    )
    assert overkill_waste > loop_waste > 0
    total = loop_waste + overkill_waste

    report = _api("post", finance, "/api/v1/efficiency/recompute/", period="week")
    assert report["rows"] == 32
    assert Decimal(report["spend_usd"]) == sum((c["cost"] for c in caller.calls), Decimal(0))
    assert report["thresholds"]["grade_floor_usd"] == report["thresholds"]["signal_floor_usd"]
    assert Decimal(report["thresholds"]["grade_floor_usd"]) == Decimal(FLOOR)

    # Ranked by avoidable dollars (the API sorts the same way as the page).
    agents = _api("get", finance, "/api/v1/efficiency?entity_kind=agent")["results"]
    assert [(a["label"], a["rank"]) for a in agents] == [
        ("Overkiller", 1), ("Looper", 2), ("Tidy", 3)
    ]  # fmt: skip
    heavy, looper, tidy = agents
    assert (heavy["grade"], Decimal(heavy["waste_usd"])) == ("D", overkill_waste)
    assert (looper["grade"], looper["capped_by"]) == ("D", "thrashing")
    assert Decimal(looper["waste_usd"]) == loop_waste
    assert (tidy["grade"], tidy["verdict"], Decimal(tidy["waste_usd"])) == ("S", "justified", 0)
    assert {a["input_digest"] for a in agents} == {report["input_digest"]}
    detail = _api("get", finance, f"/api/v1/efficiency/{looper['id']}")
    [loop] = [s for s in detail["signals"] if s["kind"] == "thrashing"]
    assert loop["evidence"]["request_ids"] == [c["request_id"] for c in caller.of("looper")]

    # The waste lands on the agents; the member (who never looped) is graded on their own calls.
    [member] = _api("get", finance, "/api/v1/efficiency?entity_kind=member")["results"]
    assert (member["grade"], member["verdict"], member["capped_by"]) == ("S", "justified", "")
    assert Decimal(member["waste_usd"]) == total
    assert Decimal(member["breakdown"]["own"]["waste_usd"]) == 0
    via = [(c["label"], Decimal(c["waste_usd"])) for c in member["breakdown"]["via_agents"]]
    assert via == [("Overkiller", overkill_waste), ("Looper", loop_waste), ("Tidy", 0)]
    assert "largest contributor agent Overkiller" in member["reason"]
    [department] = _api("get", finance, "/api/v1/efficiency?entity_kind=department")["results"]
    assert Decimal(department["waste_usd"]) == total and department["capped_by"] == ""
    assert "largest contributor agent Overkiller" in department["reason"]

    # A second recompute of the same period: the same digest and the same grades.
    def graded(pk):
        return list(
            EfficiencyGrade.objects.filter(report_id=pk)
            .order_by("entity_kind", "rank")
            .values_list("entity_kind", "label", "rank", "grade", "score", "waste_usd", "reason")
        )

    with workspace_scope(gw.cast.workspace.pk):
        first = graded(report["id"])
    again = _api("post", finance, "/api/v1/efficiency/recompute/", report_id=report["id"])
    assert (again["id"], again["input_digest"]) == (report["id"], report["input_digest"])
    assert again["thresholds"] == report["thresholds"]
    with workspace_scope(gw.cast.workspace.pk):
        assert graded(report["id"]) == first
        assert EfficiencyReport.objects.get(pk=report["id"]).input_digest == report["input_digest"]
