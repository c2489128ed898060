"""The last-owner rule holds when two owners demote or remove each other at the same moment."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test import Client

from tests.cast import build_cast
from workspaces.models import Member, Role
from workspaces.services.directory import member_update
from workspaces.services.tokens import api_token_create
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 4


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _two_owners(round_: int):
    cast = build_cast(prefix=f"r{round_}-")
    with workspace_scope(cast.workspace.pk):
        member_update(member=cast.admin, actor=cast.owner, role=Role.OWNER)
        tokens = [api_token_create(member=m, name="t")[1] for m in (cast.owner, cast.admin)]
    return cast, (cast.owner, cast.admin), tokens


def _at_once(requests):
    """Run (token, method, path, body) requests in threads released together; return statuses."""
    barrier = threading.Barrier(len(requests))
    statuses: list[int] = [0] * len(requests)

    def run(index, token, method, path, body):
        try:
            client = Client()
            barrier.wait()
            kwargs = {"data": body, "content_type": "application/json"} if body else {}
            response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {token}", **kwargs)
            statuses[index] = response.status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def _owners_left(cast) -> int:
    with workspace_scope(cast.workspace.pk):
        return Member.objects.filter(workspace=cast.workspace, role=Role.OWNER).count()


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_owners_turning_on_each_other_leave_one_owner(method):
    for round_ in range(ROUNDS):
        cast, (a, b), (token_a, token_b) = _two_owners(round_)
        body = {"role": "member"} if method == "patch" else None
        statuses = _at_once(
            [
                (token_a, method, f"/api/v1/members/{b.pk}/", body),
                (token_b, method, f"/api/v1/members/{a.pk}/", body),
            ]
        )
        assert all(s < 500 for s in statuses), statuses
        assert sorted(s < 300 for s in statuses) == [False, True], statuses
        assert _owners_left(cast) == 1
