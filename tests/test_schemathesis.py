"""Property-based run of the whole REST API from its own OpenAPI schema: no 5xx, ever.

Every operation of `/api/schema/` gets a bounded number of generated requests, sent through the
Django WSGI app in-process as a workspace owner (so the write paths run, not just the 401s).
Kept to a few examples per operation so the module finishes in well under a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

MAX_EXAMPLES = 6

# Fuzzing phase only (bounded by max_examples); the coverage phase enumerates every boundary value
# of every parameter and takes minutes on this API.
CONFIG = SchemathesisConfig.from_dict(
    {"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}}
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)


@pytest.fixture
def in_process_db():
    """Requests go through the real WSGI handler, whose request signals would close the test
    transaction's connection (django.test.Client disconnects them the same way)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def owner_token(db, in_process_db):
    from workspaces.models import Member, User
    from workspaces.services.tokens import api_token_create
    from workspaces.services.workspaces import department_create, workspace_create
    from workspaces.tenancy import workspace_scope

    user = User.objects.create_user(email="fuzz@example.com", password="x" * 20)
    workspace = workspace_create(name="Fuzz", owner=user)
    with workspace_scope(workspace.pk):
        department_create(workspace=workspace, name="Fuzz dept")
        member = Member.objects.select_related("workspace").get(workspace=workspace, user=user)
        _, raw = api_token_create(member=member, name="fuzz")
    return raw


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its curl
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, owner_token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {owner_token}"}, checks=[not_a_server_error]
    )
