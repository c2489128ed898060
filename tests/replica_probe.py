"""A Django process for tests/test_read_replica.py, driven over stdin/stdout (one JSON object a
line each way): `{"op": "...", ...}` in, `{"ok": true, ...}` or `{"ok": false, "error": ...}` out.

It runs with DATABASE_URL (the primary) and DATABASE_REPLICA_URL (the replica) of the test's
private clusters, so the router, the settings and `replica_reads()` are the real ones; the test
process pauses and resumes the replica's WAL replay between calls.

    python -m tests.replica_probe
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alephant.settings.test")
django.setup()

from django.db import connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from alephant.dbrouter import replica_reads  # noqa: E402
from billing.models import UsageRecord  # noqa: E402
from gateway.services.keys import gateway_key_create  # noqa: E402
from tests.cast import build_cast  # noqa: E402
from tests.factories import UsageRecordFactory  # noqa: E402
from workspaces.models import Member, Workspace  # noqa: E402
from workspaces.services.tokens import api_token_create  # noqa: E402
from workspaces.tenancy import workspace_scope  # noqa: E402


def _exists(request_id: str) -> bool:
    return UsageRecord.objects.filter(request_id=request_id).exists()


def setup(args: dict) -> dict:
    """The standard cast, one ledger row in each workspace, read tokens, a finance session."""
    cast = build_cast()
    a, b = cast.workspace.pk, cast.other_workspace.pk
    with workspace_scope(a):
        UsageRecordFactory(workspace_id=a, member=cast.finance, request_id="a-first")
        _, token_a = api_token_create(member=cast.finance, name="probe", scope="read")
    with workspace_scope(b):
        UsageRecordFactory(workspace_id=b, member=cast.outsider, request_id="b-first")
        _, token_b = api_token_create(member=cast.outsider, name="probe", scope="read")
    client = Client()
    client.force_login(cast.finance.user)
    return {
        "a": a,
        "b": b,
        "token_a": token_a,
        "token_b": token_b,
        "session_a": client.cookies["sessionid"].value,
    }


def write(args: dict) -> dict:
    """A committed ledger row on the primary (outside any replica block)."""
    with workspace_scope(args["workspace"]):
        UsageRecordFactory(workspace_id=args["workspace"], request_id=args["request_id"])
    return {}


def write_key(args: dict) -> dict:
    """A committed gateway key on the primary, for the keys page."""
    with workspace_scope(args["workspace"]):
        workspace = Workspace.objects.get(pk=args["workspace"])
        member = Member.objects.filter(workspace=workspace).order_by("pk").first()
        gateway_key_create(workspace=workspace, name=args["name"], member=member)
    return {}


def read(args: dict) -> dict:
    """In a replica block, read-only: is the row there?"""
    with workspace_scope(args["workspace"]), replica_reads():
        return {"seen": _exists(args["request_id"])}


def write_then_read(args: dict) -> dict:
    """One block that reads, writes, then reads: the reads after the write are the primary's."""
    ws = args["workspace"]
    with workspace_scope(ws), replica_reads():
        before = _exists(args["unreplayed_id"])
        UsageRecordFactory(workspace_id=ws, request_id=args["request_id"])
        return {
            "unreplayed_before_write": before,
            "own_write": _exists(args["request_id"]),
            "unreplayed_after_write": _exists(args["unreplayed_id"]),
        }


def wrote_before_block(args: dict) -> dict:
    """The transaction wrote before the replica block began: the block reads the primary."""
    ws = args["workspace"]
    with workspace_scope(ws):
        UsageRecordFactory(workspace_id=ws, request_id=args["request_id"])
        with replica_reads():
            return {"unreplayed": _exists(args["unreplayed_id"])}


def read_queries(args: dict) -> dict:
    """The statements one routed read costs on each connection (Django's query log)."""
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as replica,
    ):
        with workspace_scope(args["workspace"]), replica_reads():
            _exists(args["request_id"])
    return {
        "primary": [q["sql"] for q in primary.captured_queries],
        "replica": [q["sql"] for q in replica.captured_queries],
    }


def read_unscoped(args: dict) -> dict:
    """A replica block with no workspace scope: RLS must hide every row."""
    with transaction.atomic(), replica_reads():
        return {"rows": UsageRecord.objects.count()}


OPS = {
    f.__name__: f
    for f in (
        setup,
        write,
        write_key,
        read,
        write_then_read,
        wrote_before_block,
        read_queries,
        read_unscoped,
    )
}


def main() -> None:
    for line in sys.stdin:
        args: dict[str, Any] = json.loads(line)
        try:
            answer = {"ok": True, **OPS[args["op"]](args)}
        except Exception as exc:  # reported to the test, which fails on it
            answer = {"ok": False, "error": "".join(traceback.format_exception(exc))}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
