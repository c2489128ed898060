"""Row-level security for tenant tables, as a one-line migration operation.

    operations = [..., EnableRLS("Budget")]

adds ENABLE + FORCE ROW LEVEL SECURITY and the tenant policy to the model's table, plus a
read-only policy for the owner role, which is what the SECURITY DEFINER functions of the narrow
cross-tenant path (see `workspaces/system.py`) run as. The app role gets the tenant policy only.
"""

from __future__ import annotations

from django.db import migrations

TENANT_PREDICATE = "{column} = NULLIF(current_setting('app.workspace_id', true), '')::bigint"


def rls_sql(table: str, column: str = "workspace_id") -> str:
    predicate = TENANT_PREDICATE.format(column=column)
    return f"""
    ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY;
    ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS tenant_isolation ON "{table}";
    CREATE POLICY tenant_isolation ON "{table}" USING ({predicate}) WITH CHECK ({predicate});
    DROP POLICY IF EXISTS system_read ON "{table}";
    CREATE POLICY system_read ON "{table}" FOR SELECT TO CURRENT_USER USING (true);
    """


def rls_reverse_sql(table: str) -> str:
    return f"""
    DROP POLICY IF EXISTS tenant_isolation ON "{table}";
    DROP POLICY IF EXISTS system_read ON "{table}";
    ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY;
    """


class EnableRLS(migrations.operations.base.Operation):
    """Turn on tenant isolation for `model_name`'s table (column `workspace_id` by default)."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str, column: str = "workspace_id") -> None:
        self.model_name = model_name
        self.column = column

    def state_forwards(self, app_label, state):  # no model state changes
        pass

    def _table(self, app_label, state) -> str:
        return state.apps.get_model(app_label, self.model_name)._meta.db_table

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute(rls_sql(self._table(app_label, to_state), self.column))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute(rls_reverse_sql(self._table(app_label, from_state)))

    def describe(self) -> str:
        return f"Enable row-level security on {self.model_name}"

    def deconstruct(self):
        return self.__class__.__name__, [self.model_name], {"column": self.column}
