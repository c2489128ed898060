"""Late ledger rows for a month retention has archived: they are added to that month's kept
rollups (hour, day, session summary) exactly once, never rebuilt away.

Transactional tests (retention runs on its own owner-role connection); built on the helpers of
`test_ledger_partitions.py`.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from decimal import Decimal

import pytest

from attribution.models import FoldTarget, RollupFold, RollupState, SessionRollup, UsageRollup
from attribution.services.rollups import rollup_rebuild_range, rollup_workspace
from billing.models import LedgerArchive, UsageRecord
from billing.services.ledger_retention import ledger_retention_run
from billing.services.partitions import (
    DEFAULT_PARTITION,
    add_months,
    ledger_partitions_ensure_as_owner,
    partition_name,
)
from tests.billing.test_ledger_partitions import (
    _create_partitions,
    _exists,
    _month,
    _record,
    _where,
)
from workspaces.models import Workspace
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db(transaction=True)
UTC = dt.UTC


def _run(workspace_id: int) -> None:
    with workspace_scope(workspace_id):
        rollup_workspace(workspace=Workspace.objects.get(pk=workspace_id))


def _rebuild(workspace_id: int, start: dt.datetime, end: dt.datetime) -> None:
    with workspace_scope(workspace_id):
        workspace = Workspace.objects.get(pk=workspace_id)
        rollup_rebuild_range(workspace=workspace, start=start, end=end)


def _bucket(workspace_id: int, granularity: str, start: dt.datetime) -> tuple[int, Decimal]:
    """(requests, cost) of the workspace total in one bucket, as the dashboard reads it."""
    with workspace_scope(workspace_id):
        row = UsageRollup.objects.filter(
            granularity=granularity, dimension="workspace", key="", bucket_start=start
        ).first()
        return (row.requests, row.cost_usd) if row else (0, Decimal(0))


def _month_total(workspace_id: int, month: dt.datetime) -> tuple[int, Decimal]:
    with workspace_scope(workspace_id):
        rows = UsageRollup.objects.filter(
            granularity="hour", dimension="workspace", key="",
            bucket_start__gte=month, bucket_start__lt=add_months(month, 1),
        )  # fmt: skip
        return sum(r.requests for r in rows), sum((r.cost_usd for r in rows), Decimal(0))


def _session(workspace_id: int, session_id: str) -> tuple[int, Decimal, dt.datetime]:
    with workspace_scope(workspace_id):
        s = SessionRollup.objects.get(session_id=session_id)
        return s.requests, s.cost_usd, s.first_at


def _archive(month: dt.datetime, tmp_path) -> None:
    result = ledger_retention_run(now=add_months(month, 3), months=2, directory=tmp_path)
    assert partition_name(month) in {a.partition for a in result.archived}
    assert LedgerArchive.objects.filter(month=month, partition=partition_name(month)).exists()


def _hour_in_file(path, workspace_id: int, hour: dt.datetime) -> tuple[int, Decimal]:
    rows, cost = 0, Decimal(0)
    with gzip.open(path, "rt", newline="", encoding="utf-8") as text:
        for r in csv.DictReader(text):
            at = dt.datetime.fromisoformat(r["created_at"])
            if int(r["workspace_id"]) == workspace_id and hour <= at < hour + dt.timedelta(hours=1):
                rows, cost = rows + 1, cost + Decimal(r["cost_usd"])
    return rows, cost


def test_a_late_row_is_added_to_the_archived_history_once(cast, tmp_path):
    a, b = cast.workspace.pk, cast.other_workspace.pk
    old, kept = _month(2014, 5), _month(2014, 6)
    _create_partitions(old, kept)
    hour = old + dt.timedelta(days=12, hours=10)
    _record(a, "o1", hour + dt.timedelta(minutes=5), cost="2.5", session_id="run")
    _record(a, "o2", old + dt.timedelta(days=3), cost="1.000000000001", session_id="run")
    _record(a, "k1", kept + dt.timedelta(days=1), cost="0.75", session_id="run")
    _record(b, "b1", hour, cost="7")
    _run(a), _run(b)
    _archive(old, tmp_path)
    assert _bucket(a, "hour", hour) == (1, Decimal("2.5"))
    assert _session(a, "run")[:2] == (3, Decimal("4.250000000001"))

    _record(a, "late", hour + dt.timedelta(minutes=40), cost="0.000000000123", session_id="run")
    _record(a, "k2", kept + dt.timedelta(days=2), cost="0.5", session_id="run")
    assert _where(a)["late"] == DEFAULT_PARTITION

    for _ in range(2):  # the second run (and rebuilds of the range) must not count it again
        _run(a)
        assert _bucket(a, "hour", hour) == (2, Decimal("2.500000000123"))
        assert _bucket(a, "day", old + dt.timedelta(days=12)) == (2, Decimal("2.500000000123"))
        assert _month_total(a, old) == (3, Decimal("3.500000000124"))
        assert _session(a, "run") == (5, Decimal("4.750000000124"), old + dt.timedelta(days=3))
        _rebuild(a, old, add_months(kept, 1))
    assert _bucket(b, "hour", hour) == (1, Decimal("7"))
    assert _month_total(a, kept) == (2, Decimal("1.25"))

    # Traceable: the bucket is the archive file's rows of that hour + the folded ledger rows.
    with workspace_scope(a):
        folded = RollupFold.objects.filter(target=FoldTarget.BUCKET).values_list("record_id")
        late = UsageRecord.objects.filter(id__in=folded, created_at__gte=hour)
        late = late.filter(created_at__lt=hour + dt.timedelta(hours=1))
        late_total = (late.count(), sum((r.cost_usd for r in late), Decimal(0)))
    in_file = _hour_in_file(tmp_path / f"{partition_name(old)}.csv.gz", a, hour)
    assert in_file == (1, Decimal("2.5")) and late_total == (1, Decimal("0.000000000123"))
    assert _bucket(a, "hour", hour) == (in_file[0] + 1, in_file[1] + late_total[1])


def test_a_local_day_across_the_archive_edge_keeps_both_sides(cast, tmp_path):
    """Kolkata's 1 October starts at 18:30 UTC on 30 September: half archived, half not, and not
    a sum of UTC hours, so it is added to rather than rebuilt."""
    a = cast.workspace.pk
    with workspace_scope(a):
        Workspace.objects.filter(pk=a).update(time_zone="Asia/Kolkata")
    old, kept = _month(2014, 9), _month(2014, 10)
    _create_partitions(old, kept)
    day = dt.datetime(2014, 9, 30, 18, 30, tzinfo=UTC)
    _record(a, "e1", dt.datetime(2014, 9, 30, 20, tzinfo=UTC), cost="1")
    _record(a, "k1", dt.datetime(2014, 10, 1, 3, tzinfo=UTC), cost="2")
    _run(a)
    assert _bucket(a, "day", day) == (2, Decimal("3"))
    _archive(old, tmp_path)

    _record(a, "late", dt.datetime(2014, 9, 30, 21, tzinfo=UTC), cost="0.25")
    _record(a, "k2", dt.datetime(2014, 10, 1, 4, tzinfo=UTC), cost="0.5")
    for _ in range(2):
        _run(a)
        assert _bucket(a, "day", day) == (4, Decimal("3.75"))
        assert _bucket(a, "hour", dt.datetime(2014, 9, 30, 21, tzinfo=UTC)) == (1, Decimal("0.25"))
        assert _bucket(a, "hour", dt.datetime(2014, 9, 30, 20, tzinfo=UTC)) == (1, Decimal("1"))
        _rebuild(a, old, add_months(kept, 1))


def test_a_late_row_committed_below_the_watermark_is_still_added_once(cast, tmp_path):
    """Two ledger writers: the late row's id was taken before the last rollup read max(id), but
    it committed after. The id watermark would skip it; the fold list does not."""
    a = cast.workspace.pk
    old = _month(2013, 3)
    _create_partitions(old)
    hour = old + dt.timedelta(days=4, hours=7)
    _record(a, "o1", hour, cost="1.5")
    _run(a)
    _archive(old, tmp_path)
    late = _record(a, "late", hour + dt.timedelta(minutes=1), cost="0.000000000001")
    with workspace_scope(a):
        RollupState.objects.filter(workspace_id=a).update(last_record_id=late.pk + 10)
    for _ in range(2):
        _run(a)
        assert _bucket(a, "hour", hour) == (2, Decimal("1.500000000001"))
        assert _bucket(a, "day", old + dt.timedelta(days=4)) == (2, Decimal("1.500000000001"))


def test_an_archived_month_is_never_re_created_for_its_late_rows(cast, tmp_path):
    """Raising (or removing) the retention setting later must not bring an archived month back:
    its late rows stay in the default partition and are folded into the kept rollups; a new
    partition would only be refused for re-archiving on every run."""
    a = cast.workspace.pk
    old = _month(2012, 7)
    _create_partitions(old)
    _record(a, "o1", old + dt.timedelta(days=2), cost="1")
    _run(a)
    _archive(old, tmp_path)
    _record(a, "late", old + dt.timedelta(days=9), cost="0.5")
    created = ledger_partitions_ensure_as_owner(now=add_months(old, 3), keep_from=None)
    assert partition_name(old) not in created
    assert not _exists(partition_name(old))
    assert _where(a)["late"] == DEFAULT_PARTITION
