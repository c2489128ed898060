"""Usage events to ledger rows, and the one statement that inserts a workspace's rows.

The ledger writer (`gateway/ledger_writer.py`) spends its time here, so rows are plain dicts
(no model instances, no per-field Django adaptation) and a workspace's rows go to Postgres as
one JSON document expanded by `json_to_recordset`: one parameter, one statement, however many
rows. Values are checked and normalised in Python exactly as the model fields would have been
(text cut to the column's length, integers, exact decimals, aware datetimes), so a malformed
event is refused here (`BadEvent`) instead of failing its batch in Postgres.

`ON CONFLICT DO NOTHING` has no conflict target on purpose: whatever unique constraint the table
carries (`request_id`; on a partitioned ledger `(request_id, created_at)`), a replayed event
is skipped. A replay produces the same `created_at` as the first write (same float, same
conversion), so it collides with the first row under either constraint.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from billing.models import UsageRecord

TABLE = UsageRecord._meta.db_table

_TEXT_LIMITS = {
    "session_id": 128,
    "session_path": 512,
    "session_name": 256,
    "error_type": 64,
    "fingerprint": 64,
    "provider": 32,
    "model": 200,
    "endpoint": 64,
}
_OWNER_IDS = ("gateway_key_id", "member_id", "department_id", "agent_id", "provider_credential_id")
_COUNTS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
_FLAGS = ("cache_hit", "estimated", "stream")

# Every column the writer fills, with the type `json_to_recordset` reads it as. A column added to
# UsageRecord must be added here too (tests/gateway/test_ledger_writer_bulk.py checks), or the
# insert would leave it NULL instead of the model's default.
COLUMNS: dict[str, str] = {
    "request_id": "text",
    "workspace_id": "bigint",
    **dict.fromkeys(_OWNER_IDS, "bigint"),
    **dict.fromkeys(("session_id", "session_path", "session_name"), "text"),
    "properties": "jsonb",
    **dict.fromkeys(("provider", "model", "endpoint"), "text"),
    **dict.fromkeys(_COUNTS, "bigint"),
    "cost_usd": "numeric",
    "saved_usd": "numeric",
    **dict.fromkeys(_FLAGS, "boolean"),
    "status_code": "integer",
    "error_type": "text",
    "latency_ms": "integer",
    "fingerprint": "text",
    "created_at": "timestamptz",
}

_names = ", ".join(COLUMNS)
INSERT_SQL = (
    f"INSERT INTO {TABLE} ({_names}) SELECT {_names} FROM json_to_recordset(%s) AS r("
    + ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    + ") ON CONFLICT DO NOTHING"
)
SCOPE_SQL = "SELECT set_config('app.workspace_id', %s, true)"


class BadEvent(ValueError):
    pass


def _owner(value: Any) -> int | None:
    return None if value is None else int(value)


def _money(value: Any) -> str:
    amount = Decimal(str(value or "0"))
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return str(amount)


def row_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The ledger row for one usage event (fields: `gateway.hotpath.usage.FIELDS`)."""
    try:
        created = float(event["created_at"])
        if not math.isfinite(created):
            raise ValueError(f"created_at {created!r}")
        get = event.get
        row: dict[str, Any] = {
            "request_id": str(event["request_id"])[:64],
            "workspace_id": int(event["workspace_id"]),
            "properties": get("properties") or {},
            "cost_usd": _money(get("cost_usd")),
            "saved_usd": _money(get("saved_usd")),
            "status_code": int(get("status_code") or 0),
            "latency_ms": max(0, int(get("latency_ms") or 0)),
            # As DateTimeField would have it: the same float always gives the same microsecond.
            "created_at": dt.datetime.fromtimestamp(created, tz=dt.UTC),
        }
        for name in _OWNER_IDS:
            row[name] = _owner(get(name))
        for name in _COUNTS:
            row[name] = int(get(name) or 0)
    except (KeyError, TypeError, ValueError, InvalidOperation, OverflowError, OSError) as exc:
        raise BadEvent(f"malformed usage event: {exc!r}") from None
    for name in _FLAGS:
        row[name] = bool(get(name))
    for name, limit in _TEXT_LIMITS.items():
        value = get(name)
        row[name] = "" if not value else (value if type(value) is str else str(value))[:limit]
    return row


def insert_rows(cursor: Any, workspace_id: int, rows: list[dict[str, Any]]) -> None:
    """Insert one workspace's rows inside its RLS scope (the caller holds the transaction)."""
    cursor.execute(SCOPE_SQL, [str(int(workspace_id))])
    cursor.execute(INSERT_SQL, [orjson.dumps(rows).decode()])
