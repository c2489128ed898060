"""The gateway's answers to `workspaces.hooks`: key snapshots copy a member's department, role,
limits and agents, so a change there republishes the affected keys on commit, and a deleted
member or agent revokes its keys at the gateway. Connected from `GatewayConfig.ready()`."""

from __future__ import annotations

from gateway.models import GatewayKey
from gateway.snapshots import publish_key_on_commit, publish_member_keys_on_commit
from workspaces import hooks
from workspaces.models import Agent, Member


def _member_changed(*, workspace_id: int, member_id: int) -> None:
    publish_member_keys_on_commit(workspace_id, member_id)


def _revoke_on_commit(hashes: list[str]) -> None:
    for key_hash in hashes:
        publish_key_on_commit(key_hash)  # a deleted key publishes the revoked marker


def _member_removing(*, member: Member) -> None:
    # Read the hashes now: after the delete the rows (and their hashes) are gone.
    _revoke_on_commit(
        list(GatewayKey.objects.filter(member=member).values_list("key_hash", flat=True))
    )


def _agent_deleting(*, agent: Agent) -> None:
    _revoke_on_commit(
        list(GatewayKey.objects.filter(agent=agent).values_list("key_hash", flat=True))
    )


def connect() -> None:
    hooks.connect(hooks.MEMBER_CHANGED, _member_changed)
    hooks.connect(hooks.MEMBER_REMOVING, _member_removing)
    hooks.connect(hooks.AGENT_DELETING, _agent_deleting)
