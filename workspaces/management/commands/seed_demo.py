"""`python manage.py seed_demo`: the demo workspace "Demo Co", idempotent (run it any time).

Later parts add their own demo data without touching this file: a module `<app>.demo` (for
`DEMO_EXTENSION_APPS`) with `seed(demo: DemoWorkspace, *, stdout) -> None` is called inside the
demo workspace's scope after the directory below exists. It must be idempotent too. An optional
`after_seed(*, stdout) -> None` of the same module runs once every seed has committed, outside
any transaction (DDL on another connection, say, which would wait on the seed's own locks).

    from workspaces.management.commands.seed_demo import get_demo_workspace, seed_directory
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from workspaces import system
from workspaces.models import Agent, Department, Member, Role, User, Workspace
from workspaces.services.workspaces import (
    agent_create,
    department_create,
    member_add,
    workspace_create,
)
from workspaces.tenancy import workspace_scope

DEMO_WORKSPACE_NAME = "Demo Co"
DEMO_WORKSPACE_SLUG = "demo-co"
DEMO_TIME_ZONE = "Europe/Berlin"
DEMO_DOMAIN = "demo.alephant.dev"
DEMO_PASSWORD = "alephant-demo-2026"
DEMO_OWNER_EMAIL = f"owner@{DEMO_DOMAIN}"

DEPARTMENTS = ("Engineering", "Research", "Support")
# (local part of the email, role, department)
PEOPLE = (
    ("owner", Role.OWNER, None),
    ("admin", Role.ADMIN, "Support"),
    ("finance", Role.FINANCE, None),
    ("dev1", Role.MEMBER, "Engineering"),
    ("dev2", Role.MEMBER, "Engineering"),
    ("analyst", Role.MEMBER, "Research"),
)
# (slug, name, owner's local part, department, description)
AGENTS = (
    ("support-bot", "Support bot", "admin", "Support", "Answers customer tickets."),
    ("code-reviewer", "Code reviewer", "dev1", "Engineering", "Reviews pull requests."),
    (
        "research-looper",
        "Research looper",
        "analyst",
        "Research",
        "An agent that loops: it re-asks the same question when unsure.",
    ),
)
DEMO_EXTENSION_APPS = ("gateway", "billing", "attribution", "efficiency")


@dataclass
class DemoWorkspace:
    workspace: Workspace
    members: dict[str, Member] = field(default_factory=dict)  # by email local part
    departments: dict[str, Department] = field(default_factory=dict)  # by name
    agents: dict[str, Agent] = field(default_factory=dict)  # by slug

    def member(self, local_part: str) -> Member:
        return self.members[local_part]


def demo_email(local_part: str) -> str:
    return f"{local_part}@{DEMO_DOMAIN}"


def get_demo_workspace() -> Workspace | None:
    """The demo workspace, found through its owner (workspaces are under RLS)."""
    owner = User.objects.filter(email=DEMO_OWNER_EMAIL).first()
    if owner is None:
        return None
    for membership in system.user_memberships(owner.pk):
        if membership.workspace_slug == DEMO_WORKSPACE_SLUG:
            with workspace_scope(membership.workspace_id):
                return Workspace.objects.get(pk=membership.workspace_id)
    return None


def _demo_user(local_part: str) -> User:
    email = demo_email(local_part)
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=DEMO_PASSWORD)
    elif not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    # Verified, so the demo logins work whatever ALEPHANT_EMAIL_VERIFICATION says.
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


@transaction.atomic
def seed_directory() -> DemoWorkspace:
    """Create (or complete) Demo Co: members, departments and agents. Idempotent."""
    users = {local: _demo_user(local) for local, _role, _dept in PEOPLE}
    workspace = get_demo_workspace()
    if workspace is None:
        workspace = workspace_create(
            name=DEMO_WORKSPACE_NAME,
            owner=users["owner"],
            time_zone=DEMO_TIME_ZONE,
            slug=DEMO_WORKSPACE_SLUG,
        )
    demo = DemoWorkspace(workspace=workspace)
    with workspace_scope(workspace.pk):
        for name in DEPARTMENTS:
            department = Department.objects.filter(workspace=workspace, name=name).first()
            demo.departments[name] = department or department_create(workspace=workspace, name=name)
        for local, role, dept in PEOPLE:
            department = demo.departments[dept] if dept else None
            member = member_add(
                workspace=workspace, user=users[local], role=role, department=department
            )
            if member.department_id != (department.pk if department else None):
                member.department = department
                member.save(update_fields=["department"])
            demo.members[local] = member
        for slug, name, owner, dept, description in AGENTS:
            agent = Agent.objects.filter(workspace=workspace, slug=slug).first()
            demo.agents[slug] = agent or agent_create(
                workspace=workspace,
                slug=slug,
                name=name,
                owner=demo.members[owner],
                department=demo.departments[dept],
                description=description,
            )
    return demo


def run_extensions(demo: DemoWorkspace, *, stdout) -> list[str]:
    modules = []
    for app in DEMO_EXTENSION_APPS:
        module_name = f"{app}.demo"
        if importlib.util.find_spec(app) is None or importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        with workspace_scope(demo.workspace.pk):
            module.seed(demo, stdout=stdout)
        modules.append(module)
    for module in modules:
        if hasattr(module, "after_seed"):
            module.after_seed(stdout=stdout)
    return [module.__name__ for module in modules]


class Command(BaseCommand):
    help = "Create or complete the demo workspace (Demo Co) and print its logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--directory-only",
            action="store_true",
            help="members, departments and agents only; skip the apps' demo data",
        )

    def handle(self, *args, **options):
        demo = seed_directory()
        ran = [] if options["directory_only"] else run_extensions(demo, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS(f"Demo workspace: {demo.workspace.name}"))
        if ran:
            self.stdout.write(f"  demo data from: {', '.join(ran)}")
        self.stdout.write(f"  logins (password {DEMO_PASSWORD}):")
        for local, role, dept in PEOPLE:
            where = f", {dept}" if dept else ""
            self.stdout.write(f"    {demo_email(local):<28} {role.label}{where}")
