"""`workspaces.hooks`: the bottom app notifies the apps above it without importing them."""

from __future__ import annotations

import grimp
import pytest

from workspaces import hooks


def test_workspaces_imports_nothing_of_the_apps_above_it():
    graph = grimp.build_graph(
        "workspaces", "gateway", "billing", "attribution", "efficiency", cache_dir=None
    )
    for upper in ("gateway", "billing", "attribution", "efficiency"):
        assert not graph.chain_exists(importer="workspaces", imported=upper, as_packages=True), (
            upper
        )


def test_the_gateway_listens_from_its_app_config():
    # Connected by GatewayConfig.ready(): a member change republishes that member's keys.
    receivers = hooks._receivers
    assert {r.__module__ for r in receivers[hooks.MEMBER_CHANGED]} == {"gateway.receivers"}
    assert {r.__module__ for r in receivers[hooks.MEMBER_REMOVING]} == {"gateway.receivers"}
    assert {r.__module__ for r in receivers[hooks.AGENT_DELETING]} == {"gateway.receivers"}


def test_send_calls_receivers_in_order_and_connect_is_idempotent(monkeypatch):
    monkeypatch.setattr(hooks, "_receivers", {event: [] for event in hooks.EVENTS})
    calls = []

    def first(**kwargs):
        calls.append(("first", kwargs))

    def second(**kwargs):
        calls.append(("second", kwargs))

    hooks.connect(hooks.MEMBER_CHANGED, first)
    hooks.connect(hooks.MEMBER_CHANGED, second)
    hooks.connect(hooks.MEMBER_CHANGED, first)  # a second ready() adds nothing
    hooks.member_changed(workspace_id=1, member_id=2)
    assert calls == [
        ("first", {"workspace_id": 1, "member_id": 2}),
        ("second", {"workspace_id": 1, "member_id": 2}),
    ]


def test_unknown_events_are_refused():
    with pytest.raises(ValueError):
        hooks.connect("member_renamed", lambda **_: None)
    with pytest.raises(ValueError):
        hooks.send("member_renamed")
