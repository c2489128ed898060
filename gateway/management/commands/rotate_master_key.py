"""Re-wrap every workspace data key under the current master key, with no downtime.

Procedure (README, "Provider keys and the vault"):
1. Set `ALEPHANT_MASTER_KEY` (or `_FILE`) to the NEW key and `ALEPHANT_MASTER_KEY_PREVIOUS` to the
   OLD one on every process, and restart them: both keys now open data keys.
2. `python manage.py rotate_master_key` re-wraps each data key under the new key (one short
   transaction per workspace) and republishes the workspace snapshots.
3. `python manage.py rotate_master_key --check` reports 0 left; drop `ALEPHANT_MASTER_KEY_PREVIOUS`.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from core import vault
from gateway.models import WorkspaceDataKey
from gateway.services.datakey_rotation import datakeys_rewrap
from workspaces import system
from workspaces.models import Workspace
from workspaces.tenancy import workspace_scope


class Command(BaseCommand):
    help = "Re-wrap every workspace data key under the current master key."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="only count data keys not yet under the current master key; exit 1 if any",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        ring = vault.get_keyring()
        rewrapped = remaining = workspaces = 0
        for workspace_id in system.all_workspace_ids():
            with workspace_scope(workspace_id):
                if options["check"]:
                    remaining += (
                        WorkspaceDataKey.objects.filter(workspace_id=workspace_id)
                        .exclude(key_version=ring.current.version)
                        .count()
                    )
                    continue
                workspace = Workspace.objects.get(pk=workspace_id)
                try:
                    changed = datakeys_rewrap(workspace=workspace)
                except vault.VaultError as exc:
                    raise CommandError(
                        f"workspace {workspace_id}: {exc}. Is the old key in "
                        "ALEPHANT_MASTER_KEY_PREVIOUS?"
                    ) from exc
                rewrapped += changed
                workspaces += 1 if changed else 0
        result = {
            "current_key_version": ring.current.version,
            "rewrapped": rewrapped,
            "workspaces_changed": workspaces,
            "remaining": remaining,
        }
        self.stdout.write(
            json.dumps(result)
            if options["json"]
            else ", ".join(f"{k}={v}" for k, v in result.items())
        )
        if options["check"] and remaining:
            raise CommandError(f"{remaining} data key(s) still under an older master key")
