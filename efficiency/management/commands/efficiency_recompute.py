"""Recompute efficiency grades from the ledger, for scripts and cron.

python manage.py efficiency_recompute [--workspace ID] [--period week|month|all] [--json]

Each workspace runs in its own scope (RLS set); one line (or JSON object) per report with the
input digest, so a second run on the same ledger can be checked to give the same result.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from efficiency.models import Period
from efficiency.services import efficiency_compute
from workspaces import system
from workspaces.models import Workspace
from workspaces.tenancy import workspace_scope


class Command(BaseCommand):
    help = "Recompute efficiency grades (every workspace, or one) and print each input digest."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", type=int, help="only this workspace id")
        parser.add_argument("--period", choices=[*Period.values, "all"], default="all")
        parser.add_argument("--json", action="store_true", help="one JSON object per report")

    def handle(self, *args, **options):
        ids = system.all_workspace_ids()
        if options["workspace"] is not None:
            if options["workspace"] not in ids:
                raise CommandError(f"no workspace {options['workspace']}")
            ids = [options["workspace"]]
        periods = Period.values if options["period"] == "all" else [options["period"]]
        for workspace_id in ids:
            with workspace_scope(workspace_id):
                workspace = Workspace.objects.get(pk=workspace_id)
                for period in periods:
                    report = efficiency_compute(workspace=workspace, period=period)
                    self._print(workspace_id, report, as_json=options["json"])

    def _print(self, workspace_id, report, *, as_json):
        line = {
            "workspace_id": workspace_id,
            "report_id": report.pk,
            "period": report.period,
            "period_start": report.period_start.isoformat(),
            "rows": report.rows,
            "spend_usd": str(report.spend_usd),
            "input_digest": report.input_digest,
        }
        if as_json:
            self.stdout.write(json.dumps(line))
        else:
            self.stdout.write(
                f"workspace {workspace_id} {report.period} from {line['period_start']}: "
                f"{report.rows} rows, digest {report.input_digest}"
            )
