"""The usage ledger becomes a table partitioned by month on `created_at` (issue #13).

Postgres cannot turn a table into a partitioned one in place, so (as the owner, in this
migration's transaction, the old table locked):

1. remember the old table's secondary indexes, foreign keys and id sequence position;
2. rename it away; create the partitioned parent with the same columns, defaults, CHECKs and
   `id` identity (`LIKE ... INCLUDING ...`), its default partition and one partition per month
   from the oldest row to the current month + `AHEAD` (`billing.services.partitions`);
3. copy every row (ids kept), set the new identity sequence past the old one's last value (the
   rollup watermark relies on ids only growing), drop the old table and give the sequence the
   old name;
4. on the parent (hence every partition): the primary key `(id, created_at)` and
   `UNIQUE (request_id, created_at)`, since a partitioned table's unique constraints must hold
   the partition key; the old indexes and foreign keys; RLS and its policies.

Django's state keeps `id` as the model's primary key (see the `UsageRecord` docstring) and
records the new unique constraint in place of `request_id`'s `unique=True`.

Not reversible: going back means the same copy the other way; restore a backup instead.
"""

from django.db import migrations, models
from django.utils import timezone

from billing.services.partitions import PARENT, ledger_partitions_ensure
from workspaces.rls import rls_sql

OLD = f"{PARENT}_unpartitioned"
REQUEST_UNIQUE = "usage_request_id_created_at"


def _old_layout(cursor) -> tuple[list[str], list[tuple[str, str]]]:
    """(CREATE INDEX statements, (name, definition) of foreign keys) of the current table,
    leaving out what the new unique constraints replace (the primary key and request_id's)."""
    cursor.execute(
        """
        SELECT i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = %s
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                          WHERE c.conrelid = to_regclass(%s) AND c.conname = i.indexname)
          AND i.indexdef NOT LIKE '%%(request_id varchar_pattern_ops)%%'
        ORDER BY i.indexname
        """,
        [PARENT, PARENT],
    )
    indexes = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'f' ORDER BY conname",
        [PARENT],
    )
    return indexes, list(cursor.fetchall())


def _sequence_position(cursor, table: str) -> int:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}")
    last = int(cursor.fetchone()[0])
    cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"')
    return max(last, int(cursor.fetchone()[0]))


def partition_ledger(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'LOCK TABLE "{PARENT}" IN ACCESS EXCLUSIVE MODE')
        indexes, foreign_keys = _old_layout(cursor)
        position = _sequence_position(cursor, PARENT)
        cursor.execute(f'ALTER TABLE "{PARENT}" RENAME TO "{OLD}"')
        # The owner reads every row under FORCE RLS only through `system_read`; be explicit.
        cursor.execute(f'ALTER TABLE "{OLD}" NO FORCE ROW LEVEL SECURITY')
        cursor.execute(
            f'CREATE TABLE "{PARENT}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
            "INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS) "
            "PARTITION BY RANGE (created_at)"
        )
        cursor.execute(f'SELECT min(created_at) FROM "{OLD}"')
        oldest = cursor.fetchone()[0]
        now = timezone.now()
        ledger_partitions_ensure(cursor, now=now, since=min(oldest or now, now))
        # Rows first, indexes after: one index build per partition instead of row by row.
        cursor.execute(f'INSERT INTO "{PARENT}" SELECT * FROM "{OLD}"')
        cursor.execute(f'DROP TABLE "{OLD}"')
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [PARENT])
        sequence = cursor.fetchone()[0]
        if position:
            cursor.execute("SELECT setval(%s, %s, true)", [sequence, position])
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {PARENT}_id_seq")
        cursor.execute(
            f'ALTER TABLE "{PARENT}" ADD CONSTRAINT "{PARENT}_pkey" PRIMARY KEY (id, created_at)'
        )
        cursor.execute(
            f'ALTER TABLE "{PARENT}" ADD CONSTRAINT "{REQUEST_UNIQUE}" '
            "UNIQUE (request_id, created_at)"
        )
        for statement in indexes:
            cursor.execute(statement)
        for name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE "{PARENT}" ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(rls_sql(PARENT))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0012_spend_reports"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition_ledger, elidable=False)],
            state_operations=[
                migrations.AlterField(
                    model_name="usagerecord",
                    name="request_id",
                    field=models.CharField(max_length=64),
                ),
                migrations.AddConstraint(
                    model_name="usagerecord",
                    constraint=models.UniqueConstraint(
                        fields=("request_id", "created_at"), name=REQUEST_UNIQUE
                    ),
                ),
            ],
        ),
    ]
