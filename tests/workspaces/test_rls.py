"""Row-level security, exercised through the app role with raw SQL."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from workspaces.models import Department, Member
from workspaces.tenancy import WorkspaceScopeMissing, current_workspace_id, workspace_scope


def _count(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def test_tests_run_as_the_app_role_which_cannot_bypass_rls(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)
        cursor.execute(
            "SELECT tableowner = current_user FROM pg_tables WHERE tablename = %s",
            ["workspaces_member"],
        )
        assert cursor.fetchone()[0] is False
        cursor.execute("SELECT has_table_privilege(current_user, 'workspaces_member', 'TRUNCATE')")
        assert cursor.fetchone()[0] is False


def test_raw_sql_sees_only_its_own_workspace(cast):
    with workspace_scope(cast.workspace.pk):
        assert _count("SELECT count(*) FROM workspaces_member") == 4
        assert (
            _count(
                "SELECT count(*) FROM workspaces_member WHERE workspace_id = %s",
                [cast.other_workspace.pk],
            )
            == 0
        )
        assert _count("SELECT count(*) FROM workspaces_workspace") == 1
    with workspace_scope(cast.other_workspace.pk):
        assert _count("SELECT count(*) FROM workspaces_member") == 1


def test_no_scope_sees_nothing(cast):
    with transaction.atomic():
        assert _count("SELECT count(*) FROM workspaces_member") == 0
        assert _count("SELECT count(*) FROM workspaces_workspace") == 0
    with pytest.raises(WorkspaceScopeMissing):
        current_workspace_id()


def test_cannot_insert_into_another_workspace(cast):
    with workspace_scope(cast.workspace.pk):
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO workspaces_department (workspace_id, name, created_at) "
                    "VALUES (%s, 'stolen', now())",
                    [cast.other_workspace.pk],
                )
        with pytest.raises(ProgrammingError), transaction.atomic():
            Department.objects.create(workspace=cast.other_workspace, name="stolen too")
    with workspace_scope(cast.other_workspace.pk):
        assert not Department.objects.filter(name__startswith="stolen").exists()


def test_cannot_move_a_row_to_another_workspace(cast):
    with workspace_scope(cast.workspace.pk):
        with pytest.raises(ProgrammingError), transaction.atomic():
            Member.objects.filter(pk=cast.member.pk).update(workspace_id=cast.other_workspace.pk)


def test_nested_scope_restores_the_outer_one(cast):
    with workspace_scope(cast.workspace.pk):
        with workspace_scope(cast.other_workspace.pk):
            assert _count("SELECT count(*) FROM workspaces_member") == 1
        assert current_workspace_id() == cast.workspace.pk
        assert _count("SELECT count(*) FROM workspaces_member") == 4


@pytest.mark.django_db(transaction=True)
def test_pooled_connection_never_carries_the_previous_scope():
    from tests.cast import build_cast

    cast = build_cast("pool-")
    with workspace_scope(cast.workspace.pk):
        assert _count("SELECT count(*) FROM workspaces_member") == 4
    # Same connection, next "request", autocommit: the local setting is gone.
    assert _count("SELECT count(*) FROM workspaces_member") == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.workspace_id', true)")
        assert cursor.fetchone()[0] in (None, "")
    # A set_config outside atomic() is lost immediately (autocommit), never leaks.
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.workspace_id', %s, true)", [str(cast.workspace.pk)])
    assert _count("SELECT count(*) FROM workspaces_member") == 0


def tenant_tables_rls() -> list[tuple[str, bool]]:
    """(table, has forced RLS + the tenant policy) for every tenant table: plain tables,
    partitioned parents (relkind 'p') and each partition (relkind 'r', created by a migration
    or later at run time by the ledger partition task). Columns come from `pg_attribute`, which
    lists every table whatever the current role's privileges (`information_schema` would hide
    a table the app role was never granted)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity
                   AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
                           AND p.polname = 'tenant_isolation'
                           AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app.workspace_id%'
                           AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%app.workspace_id%')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              AND (EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attname = 'workspace_id'
                             AND NOT a.attisdropped)
                   OR c.relname = 'workspaces_workspace')
            """
        )
        return cursor.fetchall()


def test_every_tenant_table_has_forced_rls_and_the_policy(db):
    rows = tenant_tables_rls()
    assert len(rows) >= 5
    names = {name for name, _ok in rows}
    # The partitioned ledger: its parent and its partitions are all enumerated.
    assert {"billing_usagerecord", "billing_usagerecord_default"} <= names
    assert [name for name, ok in rows if not ok] == []
