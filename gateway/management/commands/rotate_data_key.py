"""Give a workspace a new data key and re-encrypt its provider secrets under it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from gateway.services.datakey_rotation import datakey_rotate
from workspaces import system
from workspaces.models import Workspace
from workspaces.services.audit import audit_record
from workspaces.tenancy import workspace_scope


class Command(BaseCommand):
    help = "Rotate the data key of one workspace (--workspace ID) or of all (--all)."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--workspace", type=int)
        target.add_argument("--all", action="store_true")

    def handle(self, *args, **options):
        ids = system.all_workspace_ids()
        if options["workspace"] is not None:
            if options["workspace"] not in ids:
                raise CommandError(f"no workspace {options['workspace']}")
            ids = [options["workspace"]]
        for workspace_id in ids:
            with workspace_scope(workspace_id):
                workspace = Workspace.objects.get(pk=workspace_id)
                key = datakey_rotate(workspace=workspace)
                audit_record(
                    workspace=workspace,
                    actor=None,
                    action="vault.data_key_rotate",
                    target_type="gateway.workspacedatakey",
                    target_id=key.pk,
                    target_label=f"data key v{key.version}",
                    after={"version": key.version},
                )
            self.stdout.write(f"workspace {workspace_id}: data key v{key.version}")
