"""The monthly FOCUS file: last month's export written to `ALEPHANT_FOCUS_EXPORT_DIR`
(`<dir>/<workspace id>/focus-YYYY-MM.csv`), replaced atomically so a reader never sees half."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from django.conf import settings

from reconciliation.focus import focus_csv, focus_rows
from reconciliation.params import month_of
from workspaces.models import Workspace


def focus_file_write(*, workspace: Workspace, month_day: dt.date, directory: str = "") -> Path:
    directory = directory or settings.ALEPHANT_FOCUS_EXPORT_DIR
    if not directory:
        raise ValueError("ALEPHANT_FOCUS_EXPORT_DIR is not set")
    since, until = month_of(month_day)
    target = Path(directory) / str(workspace.pk) / f"focus-{since:%Y-%m}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".csv.partial")
    partial.write_text(focus_csv(focus_rows(workspace=workspace, since=since, until=until)))
    os.replace(partial, target)
    return target
