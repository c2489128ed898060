"""CSV export of any table on a page, in any app: `?export=<table name>` on the same URL.

A view builds its tables once (headers + plain values); the template renders rich cells from
the same rows, the export writes the plain values (exact Decimals, ISO times in the
workspace's zone).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


@dataclass
class Table:
    name: str
    headers: list[str]
    rows: list[list] = field(default_factory=list)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}"
    text = str(value)
    # Spreadsheet formula injection: a cell starting with = + - @ is read as a formula.
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


def csv_response(table: Table, *, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    writer = csv.writer(response)
    writer.writerow(table.headers)
    for row in table.rows:
        writer.writerow([_cell(v) for v in row])
    return response


def render_with_export(
    request: HttpRequest, template: str, context: dict, tables: list[Table], *, slug: str
) -> HttpResponse:
    wanted = request.GET.get("export")
    if wanted:
        for table in tables:
            if table.name == wanted:
                return csv_response(table, filename=f"{slug}-{table.name}")
        return HttpResponse("No such table.", status=404, content_type="text/plain")
    context["export_names"] = [t.name for t in tables]
    return render(request, template, context)
