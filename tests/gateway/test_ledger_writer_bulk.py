"""The ledger writer's bulk insert (`gateway/ledger_rows.py`): every column the model has is
written, values land exactly as the model fields would store them, a malformed event is dead-
lettered instead of retried forever, and two writers racing on replays store each event once."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import orjson
import pytest
from django.db import ProgrammingError, connection, connections, transaction

from billing.models import UsageRecord
from gateway.hotpath.usage import FIELDS, STREAM
from gateway.ledger_rows import COLUMNS, BadEvent, insert_rows, row_from_event
from gateway.ledger_writer import DEAD_STREAM, LedgerWriter
from tests.billing.test_ledger_writer import event, push
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_model_column_is_written_and_every_event_field_read():
    model_columns = {f.column for f in UsageRecord._meta.concrete_fields if not f.primary_key}
    assert set(COLUMNS) == model_columns == set(FIELDS)


def test_values_are_stored_exactly(cast, redis_client):
    ws = cast.workspace.pk
    created = 1_764_547_200.123457  # not representable exactly: rounded as DateTimeField would
    full = event(
        ws,
        "exact-1",
        gateway_key_id=11,
        member_id=cast.member.pk,
        department_id=3,
        agent_id=4,
        provider_credential_id=5,
        session_id="s" * 300,  # longer than the column: cut as before
        model="m" * 250,
        properties={"team": "search", "n": [1, 2]},
        cost_usd="0.000123456789",
        saved_usd="1E-7",
        input_tokens=2**40,
        cache_hit=True,
        stream=True,
        latency_ms=-5,
        status_code=429,
        error_type="rate_limited",
        created_at=created,
    )
    push(redis_client, full)
    assert LedgerWriter(redis_client, consumer="t").drain() == 1
    with workspace_scope(ws):
        row = UsageRecord.objects.get()
    assert row.request_id == "exact-1"
    assert (row.gateway_key_id, row.member_id, row.department_id, row.agent_id) == (
        11,
        cast.member.pk,
        3,
        4,
    )
    assert row.provider_credential_id == 5
    assert row.session_id == "s" * 128 and row.model == "m" * 200
    assert row.properties == {"team": "search", "n": [1, 2]}
    assert row.cost_usd == Decimal("0.000123456789") and row.saved_usd == Decimal("0.0000001")
    assert row.input_tokens == 2**40 and row.output_tokens == 5
    assert row.cache_hit and row.stream and not row.estimated
    assert (row.status_code, row.error_type, row.latency_ms) == (429, "rate_limited", 0)
    assert row.created_at == dt.datetime.fromtimestamp(created, tz=dt.UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"member_id": "abc"},
        {"cost_usd": "NaN"},
        {"cost_usd": "lots"},
        {"created_at": "inf"},
        {"input_tokens": [1]},
        {"workspace_id": None},
    ],
)
def test_a_malformed_field_is_refused_before_postgres(change):
    with pytest.raises(BadEvent):
        row_from_event({**event(1, "bad"), **change})


def test_malformed_and_orphan_events_are_dead_lettered_and_the_rest_of_the_batch_stored(
    cast, redis_client
):
    a, b = cast.workspace.pk, cast.other_workspace.pk
    push(
        redis_client,
        event(a, "a1"),
        event(a, "bad-owner", member_id="abc"),  # was an endless retry with bulk_create
        event(b, "b1"),
        event(999_999, "orphan"),  # no such workspace: the batch fails, then is split
        event(a, "huge-status", status_code=70_000),  # out of range for the column
        event(b, "b2"),
        [1, 2],  # JSON, but not an event
    )
    writer = LedgerWriter(redis_client, consumer="t")
    assert writer.drain() == 7
    with workspace_scope(a):
        assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"a1"}
    with workspace_scope(b):
        assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"b1", "b2"}
    dead = [orjson.loads(f[b"e"]) for _id, f in redis_client.xrange(DEAD_STREAM)]
    assert sorted(str(d["request_id"] if isinstance(d, dict) else d) for d in dead) == [
        "[1, 2]",
        "bad-owner",
        "huge-status",
        "orphan",
    ]
    assert redis_client.xlen(STREAM) == 0


def test_two_writers_racing_on_replays_store_each_event_once(cast, redis_client):
    a, b = cast.workspace.pk, cast.other_workspace.pk
    originals = [event((a, b)[i % 2], f"race-{i}") for i in range(600)]
    # Every event three times, interleaved, so both writers insert the same ids at once.
    push(redis_client, *originals, *reversed(originals), *originals)
    errors: list[BaseException] = []

    def drain(name: str) -> None:
        try:
            LedgerWriter(redis_client, consumer=name, batch_size=150).drain()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert redis_client.xlen(STREAM) == 0
    for ws, parity in ((a, 0), (b, 1)):
        with workspace_scope(ws):
            ids = list(UsageRecord.objects.values_list("request_id", flat=True))
        assert len(ids) == len(set(ids)) == 300
        assert {int(i.split("-")[1]) % 2 for i in ids} == {parity}


def test_the_insert_runs_under_rls_in_the_rows_workspace_scope(cast):
    a, b = cast.workspace.pk, cast.other_workspace.pk
    row = row_from_event(event(b, "foreign"))
    # The scope is A's, the row B's: the policy's WITH CHECK refuses it (the app role has no
    # way around RLS), so the writer can only store a row inside its own workspace's scope.
    with pytest.raises(ProgrammingError, match="row-level security"):
        with transaction.atomic(), connection.cursor() as cursor:
            insert_rows(cursor, a, [row])
    with transaction.atomic(), connection.cursor() as cursor:
        insert_rows(cursor, b, [row])
    with workspace_scope(b):
        assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["foreign"]
