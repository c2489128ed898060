"""`manage.py seed_demo` builds Demo Co and can run again without duplicating anything."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from attribution import demo as attribution_demo
from billing.services.partitions import DEFAULT_PARTITION, owner_cursor
from tests.workspaces.helpers import members_of
from workspaces.management.commands.seed_demo import (
    DEMO_PASSWORD,
    get_demo_workspace,
)
from workspaces.models import Agent, Department, Role, User
from workspaces.tenancy import workspace_scope


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--directory-only", stdout=out)
    return out.getvalue()


def test_seed_demo_is_idempotent_and_prints_the_logins(db):
    first = _seed()
    _seed()
    workspace = get_demo_workspace()
    assert workspace.name == "Demo Co" and workspace.time_zone == "Europe/Berlin"
    members = members_of(workspace)
    roles = {email.split("@")[0]: m.role for email, m in members.items()}
    assert roles == {
        "owner": Role.OWNER,
        "admin": Role.ADMIN,
        "finance": Role.FINANCE,
        "dev1": Role.MEMBER,
        "dev2": Role.MEMBER,
        "analyst": Role.MEMBER,
    }
    with workspace_scope(workspace.pk):
        assert sorted(Department.objects.values_list("name", flat=True)) == [
            "Engineering",
            "Research",
            "Support",
        ]
        agents = {a.slug: a.department.name for a in Agent.objects.select_related("department")}
    assert agents == {
        "support-bot": "Support",
        "code-reviewer": "Engineering",
        "research-looper": "Research",
    }
    assert User.objects.filter(email__endswith="@demo.alephant.dev").count() == 6
    assert User.objects.get(email="finance@demo.alephant.dev").check_password(DEMO_PASSWORD)
    assert "owner@demo.alephant.dev" in first and DEMO_PASSWORD in first


def test_demo_owner_can_log_in_with_the_printed_password(db, client):
    _seed()
    response = client.post(
        "/accounts/login/", {"login": "owner@demo.alephant.dev", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 302
    page = client.get("/")
    assert page.status_code == 200 and b"Demo Co" in page.content


@pytest.mark.django_db(transaction=True)  # the partitions are made on another connection
def test_the_demo_history_lands_in_month_partitions_not_the_default_one(monkeypatch, tmp_path):
    """The 30 days of history are dated in past months, which a new install has no partition
    for: without the seed making them, every history row sat in the default partition until
    the hourly beat task moved it."""
    monkeypatch.setattr(attribution_demo, "KEYS_FILE", tmp_path / "demo_keys.json")
    out = StringIO()
    call_command("seed_demo", stdout=out)
    with owner_cursor() as cursor:  # partitions are read by name, past RLS, as the owner
        cursor.execute(f'SELECT count(*) FROM "{DEFAULT_PARTITION}"')
        stray = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM billing_usagerecord WHERE request_id LIKE 'demo-hist-%'"
        )
        history = cursor.fetchone()[0]
    assert history > 1000 and stray == 0
