"""Bootstrap for scripts and CI: a workspace, its owner and an API token, printed once.

python manage.py create_workspace --name Acme --owner-email ops@acme.example --json
{"workspace_id": 1, "user_id": 1, "member_id": 1, "api_token": "alpt_..."}
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from workspaces.models import Member, User
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import workspace_create
from workspaces.tenancy import workspace_scope


class Command(BaseCommand):
    help = "Create a workspace with an owner (created if new) and print a new API token."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--token-name", default="bootstrap")
        parser.add_argument("--json", action="store_true", help="print JSON only")

    def handle(self, *args, **options):
        email = options["owner_email"].strip().lower()
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"invalid --owner-email {email!r}") from exc
        if not options["name"].strip():
            raise CommandError("--name may not be blank")
        with transaction.atomic():
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email=email, password=None)
            try:
                workspace = workspace_create(
                    name=options["name"], owner=user, time_zone=options["time_zone"]
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            with workspace_scope(workspace.pk):
                member = Member.objects.select_related("workspace", "user").get(
                    workspace=workspace, user=user
                )
                _token, raw = api_token_create(member=member, name=options["token_name"])
        result = {
            "workspace_id": workspace.pk,
            "workspace_slug": workspace.slug,
            "user_id": user.pk,
            "member_id": member.pk,
            "api_token": raw,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"Workspace {workspace.name!r} (id {workspace.pk}) owned by {email}.\n"
                f"API token (shown once): {raw}\n"
                f"Try: curl -H 'Authorization: Bearer {raw}' "
                f"http://127.0.0.1:8000/api/v1/members/"
            )
