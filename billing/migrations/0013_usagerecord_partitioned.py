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

Reversible: going back makes the same copy the other way (`migrate billing 0012`).
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


# The unique keys of each layout: (constraint name, definition). Partitioned: the partition key
# must be part of each. Plain: what 0001 made (and the `_like` index Django adds beside it).
PARTITIONED_KEYS = [
    (f"{PARENT}_pkey", "PRIMARY KEY (id, created_at)"),
    (REQUEST_UNIQUE, "UNIQUE (request_id, created_at)"),
]
PLAIN_KEYS = [
    (f"{PARENT}_pkey", "PRIMARY KEY (id)"),
    (f"{PARENT}_request_id_key", "UNIQUE (request_id)"),
]
REQUEST_LIKE_INDEX = (
    f'CREATE INDEX "{PARENT}_request_id_21a19607_like" ON "{PARENT}" '
    "(request_id varchar_pattern_ops)"
)


def _rebuild(cursor, *, partitioned: bool) -> None:
    """Copy the ledger into a new table of the other layout, under the same names."""
    cursor.execute(f'LOCK TABLE "{PARENT}" IN ACCESS EXCLUSIVE MODE')
    indexes, foreign_keys = _old_layout(cursor)
    position = _sequence_position(cursor, PARENT)
    cursor.execute(f'ALTER TABLE "{PARENT}" RENAME TO "{OLD}"')
    # The owner reads every row under FORCE RLS only through `system_read`; be explicit.
    cursor.execute(f'ALTER TABLE "{OLD}" NO FORCE ROW LEVEL SECURITY')
    cursor.execute(
        f'CREATE TABLE "{PARENT}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        "INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)"
        + (" PARTITION BY RANGE (created_at)" if partitioned else "")
    )
    if partitioned:
        cursor.execute(f'SELECT min(created_at) FROM "{OLD}"')
        oldest, now = cursor.fetchone()[0], timezone.now()
        ledger_partitions_ensure(cursor, now=now, since=min(oldest or now, now))
    # Rows first, indexes after: one index build per table instead of row by row.
    cursor.execute(f'INSERT INTO "{PARENT}" SELECT * FROM "{OLD}"')
    cursor.execute(f'DROP TABLE "{OLD}"')  # a partitioned one with its partitions
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [PARENT])
    sequence = cursor.fetchone()[0]
    if position:
        cursor.execute("SELECT setval(%s, %s, true)", [sequence, position])
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {PARENT}_id_seq")
    for name, definition in PARTITIONED_KEYS if partitioned else PLAIN_KEYS:
        cursor.execute(f'ALTER TABLE "{PARENT}" ADD CONSTRAINT "{name}" {definition}')
    for statement in indexes if partitioned else [REQUEST_LIKE_INDEX, *indexes]:
        cursor.execute(statement)
    for name, definition in foreign_keys:
        cursor.execute(f'ALTER TABLE "{PARENT}" ADD CONSTRAINT "{name}" {definition}')
    cursor.execute(rls_sql(PARENT))


def partition_ledger(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        _rebuild(cursor, partitioned=True)


def unpartition_ledger(apps, schema_editor) -> None:
    """Back to one plain table (fails on `UNIQUE (request_id)` if two rows share a request id
    with different times, which the gateway never writes)."""
    with schema_editor.connection.cursor() as cursor:
        _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0012_spend_reports"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(partition_ledger, unpartition_ledger, elidable=False)
            ],
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
