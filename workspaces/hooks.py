"""Hooks: how `workspaces` tells the apps above it that something they copied has changed,
without importing them (`workspaces` is the bottom app; `gateway` builds on it).

An upper app registers its receivers once, from its `AppConfig.ready()`; `workspaces` services
call `send(...)` inside their transaction. Receivers run synchronously, in registration order,
and are expected to defer real work to `transaction.on_commit` themselves.

Events (keyword arguments):

* `MEMBER_CHANGED` (`workspace_id`, `member_id`): a member's role, department, limits or
  agents changed; what is denormalised from them (gateway key snapshots) is stale.
* `MEMBER_REMOVING` (`member`): the member is about to be deleted, with their keys.
* `AGENT_DELETING` (`agent`): the agent is about to be deleted, with its keys.
"""

from __future__ import annotations

from collections.abc import Callable

MEMBER_CHANGED = "member_changed"
MEMBER_REMOVING = "member_removing"
AGENT_DELETING = "agent_deleting"
EVENTS = frozenset({MEMBER_CHANGED, MEMBER_REMOVING, AGENT_DELETING})

Receiver = Callable[..., None]
_receivers: dict[str, list[Receiver]] = {event: [] for event in EVENTS}


def connect(event: str, receiver: Receiver) -> None:
    """Register `receiver` for `event` (idempotent: a second `ready()` adds nothing)."""
    if event not in EVENTS:
        raise ValueError(f"unknown hook {event!r}")
    if receiver not in _receivers[event]:
        _receivers[event].append(receiver)


def send(event: str, **kwargs: object) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown hook {event!r}")
    for receiver in _receivers[event]:
        receiver(**kwargs)


def member_changed(*, workspace_id: int, member_id: int) -> None:
    send(MEMBER_CHANGED, workspace_id=workspace_id, member_id=member_id)
