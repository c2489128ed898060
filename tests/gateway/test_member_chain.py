"""The member's own chain and the combined limits, on the request path (no Django): which
departments a call counts on, which allow-lists it must match, and that a key's rpm only
narrows the workspace floor. The end-to-end version is tests/gateway/test_member_caps_e2e.py."""

from __future__ import annotations

import dataclasses

import pytest

from core.limits import Limits, effective, glob_within, model_in_allowlists
from gateway.hotpath.budgets import scope_chain
from gateway.hotpath.enforcer import Enforcer
from gateway.hotpath.routing import Route, attribution, model_allowed
from tests.billing import test_enforcement
from tests.billing.test_enforcement import budget, request, workspace, zero_loader

run = test_enforcement.run  # the fixture: a coroutine runner on the test Redis db

ENG, RESEARCH = 40, 41


def _key(**extra):
    key = {
        "member_id": 30,
        "department_id": ENG,
        "agent_id": None,
        "agent_department_id": None,
        "member_agents": {
            "scout": {"agent_id": 21, "agent_department_id": RESEARCH},
            "helper": {"agent_id": 22, "agent_department_id": None},
        },
    }
    key.update(extra)
    return key


def test_an_agent_never_replaces_the_members_department():
    who = attribution(_key(), {b"alephant-agent": b"scout"})
    assert (who.agent_id, who.department_id, who.agent_department_id) == (21, ENG, RESEARCH)
    who = attribution(_key(), {b"alephant-agent": b"helper"})
    assert (who.department_id, who.agent_department_id) == (ENG, None)
    who = attribution(_key(agent_id=21, agent_department_id=RESEARCH, member_agents={}), {})
    assert (who.department_id, who.agent_department_id) == (ENG, RESEARCH)


def test_the_chain_holds_both_departments_when_the_agent_sits_elsewhere():
    req = dataclasses.replace(request(), department_id=ENG, agent_department_id=RESEARCH)
    assert scope_chain(req) == [
        ("key", 10),
        ("agent", 20),
        ("member", 30),
        ("department", ENG),
        ("department", RESEARCH),
        ("workspace", 1),
    ]
    same = dataclasses.replace(req, agent_department_id=ENG)
    assert [s for s in scope_chain(same) if s[0] == "department"] == [("department", ENG)]


@pytest.mark.parametrize("exhausted", [ENG, RESEARCH])
def test_either_department_exhausted_refuses(run, exhausted):
    ws = workspace(budget(1, "department", exhausted, limit_usd=0.01))
    req = dataclasses.replace(request(0.1), department_id=ENG, agent_department_id=RESEARCH)

    async def go(client):
        return await Enforcer(client, loader=zero_loader).admit(req, ws, {"rpm": None})

    admission = run(go)
    assert admission.status == 402 and f"department {exhausted} budget 1" in admission.message


def test_a_keys_rpm_narrows_the_workspace_floor_never_replaces_it(run):
    ws = workspace(rpm_floor=3)

    async def go(client):
        enforcer = Enforcer(client, loader=zero_loader)
        codes = []
        for _ in range(5):
            admission = await enforcer.admit(request(0.0), ws, {"rpm": 1000})
            codes.append(admission.status)
        return codes

    assert run(go) == [200, 200, 200, 429, 429]


def _route(model="gpt-4o-mini"):
    return Route({"name": "oai", "provider": "openai"}, "openai", model, None)  # type: ignore[arg-type]


def test_a_call_must_match_every_allow_list():
    key = {"allowed_models": ["gpt-4o*"], "model_allowlists": [["gpt-4o*"], ["gpt-4o-mini"]]}
    assert model_allowed(key, "gpt-4o-mini", _route("gpt-4o-mini"))
    assert not model_allowed(key, "gpt-4o", _route("gpt-4o"))
    assert model_allowed({"model_allowlists": []}, "x", _route("gpt-4o"))
    assert model_allowed({"allowed_models": None}, "x", _route("gpt-4o"))  # an older snapshot
    assert not model_allowed({"allowed_models": ["o1"]}, "x", _route("gpt-4o"))


def test_limits_combine_by_narrowing():
    import datetime as dt

    early = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    late = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    lists, rpm, tpm, expires = effective(
        Limits(allowed_models=["gpt-4o*"], rpm=500, expires_at=late),
        Limits(allowed_models=["gpt-4o-mini"], rpm=3, tpm=1000, expires_at=early),
    )
    assert lists == [["gpt-4o*"], ["gpt-4o-mini"]] and (rpm, tpm, expires) == (3, 1000, early)
    assert effective(Limits(), Limits()) == ([], None, None, None)
    assert model_in_allowlists(lists, ["gpt-4o-mini"]) and not model_in_allowlists(lists, ["o1"])
    assert glob_within("gpt-4o-mini-2024*", ["gpt-4o-mini*"])
    assert glob_within("gpt-4o-mini", ["gpt-4o*"])
    assert not glob_within("gpt-4o*", ["gpt-4o-mini*"])
    assert not glob_within("*", ["gpt-4o*"])
