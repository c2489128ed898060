from django.db import migrations

from workspaces.rls import EnableRLS

FUNCTIONS = """
CREATE OR REPLACE FUNCTION alephant_user_memberships(p_user_id bigint)
RETURNS TABLE (workspace_id bigint, workspace_name varchar, workspace_slug varchar,
               member_id bigint, role varchar)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT w.id, w.name, w.slug, m.id, m.role
  FROM workspaces_member m JOIN workspaces_workspace w ON w.id = m.workspace_id
  WHERE m.user_id = p_user_id ORDER BY w.name, w.id
$$;

CREATE OR REPLACE FUNCTION alephant_invitation_lookup(p_token_hash varchar)
RETURNS TABLE (invitation_id bigint, workspace_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT i.id, i.workspace_id FROM workspaces_invitation i WHERE i.token_hash = p_token_hash
$$;

CREATE OR REPLACE FUNCTION alephant_workspace_ids()
RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT id FROM workspaces_workspace ORDER BY id
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS alephant_user_memberships(bigint);
DROP FUNCTION IF EXISTS alephant_invitation_lookup(varchar);
DROP FUNCTION IF EXISTS alephant_workspace_ids();
"""


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0001_initial")]

    operations = [
        EnableRLS("Workspace", column="id"),
        EnableRLS("Department"),
        EnableRLS("Member"),
        EnableRLS("Agent"),
        EnableRLS("Invitation"),
        migrations.RunSQL(FUNCTIONS, DROP),
    ]
