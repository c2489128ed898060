"""The one narrow path for cross-tenant reads the system itself needs.

Each read is a SECURITY DEFINER SQL function (created in `workspaces/migrations/0002_system.py`)
owned by the owner role, whose only extra right is the read-only `system_read` policy. The app
role never turns RLS off; it can only ask these specific questions:

* which workspaces does this user belong to (login, workspace switcher)
* which workspace holds the invitation with this token hash (accepting a link)
* which workspaces exist (Celery fan-out)
"""

from __future__ import annotations

from dataclasses import dataclass

import dj_database_url
from django.conf import settings
from django.db import connection


@dataclass(frozen=True)
class Membership:
    workspace_id: int
    workspace_name: str
    workspace_slug: str
    member_id: int
    role: str


def user_memberships(user_id: int) -> list[Membership]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alephant_user_memberships(%s)", [user_id])
        return [Membership(*row) for row in cursor.fetchall()]


def invitation_workspace(token_hash: str) -> tuple[int, int] | None:
    """(invitation_id, workspace_id) for a link token's hash, or None."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alephant_invitation_lookup(%s)", [token_hash])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def all_workspace_ids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT alephant_workspace_ids()")
        return [row[0] for row in cursor.fetchall()]


def next_workspace_id() -> int:
    """Reserve a workspace id, so the new row can be inserted inside its own scope."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('workspaces_workspace', 'id'))")
        return int(cursor.fetchone()[0])


def app_role_name() -> str:
    return dj_database_url.parse(settings.DATABASE_APP_URL)["USER"]


def grant_app_role(**_kwargs) -> None:
    """After migrate (as the owner): DML, never TRUNCATE, for the app role on every table."""
    role = app_role_name()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        if cursor.fetchone()[0] == role:
            return
        quoted = connection.ops.quote_name(role)
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}"
        )
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        cursor.execute(f"REVOKE TRUNCATE ON ALL TABLES IN SCHEMA public FROM {quoted}")
        cursor.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {quoted}")
        # The audit log is append-only for the app: take back what the blanket grant gave.
        cursor.execute("SELECT to_regclass('public.workspaces_auditlog') IS NOT NULL")
        if cursor.fetchone()[0]:
            cursor.execute(f"REVOKE UPDATE, DELETE ON workspaces_auditlog FROM {quoted}")


def api_token_lookup(token_hash: str) -> tuple[int, int, int] | None:
    """(token_id, workspace_id, member_id) of a live API token with this hash, or None."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alephant_api_token_lookup(%s)", [token_hash])
        row = cursor.fetchone()
    return (row[0], row[1], row[2]) if row else None


def gateway_key_workspace(key_hash: str) -> tuple[int, int] | None:
    """(key_id, workspace_id) of the gateway key with this hash, or None (snapshot cold path)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alephant_gateway_key_lookup(%s)", [key_hash])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def vault_sample() -> tuple[int, str, str] | None:
    """(workspace_id, wrapped_dek, key_version) of one active data key, for the start-up check."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alephant_vault_sample()")
        row = cursor.fetchone()
    return (row[0], row[1], row[2]) if row else None
