"""Tenancy data: users (global), workspaces and everything that belongs to one workspace.

Every model that subclasses `TenantModel` carries `workspace_id` and is covered by RLS
(`workspaces.rls.EnableRLS` in its migration; `tests/workspaces/test_rls.py` checks every table).
"""

from __future__ import annotations

import zoneinfo

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Global (not a tenant row): one user may belong to several workspaces."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"unknown time zone {value!r}")


class Workspace(models.Model):
    """The tenant. Its own row is under RLS too (policy on `id`)."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    currency = models.CharField(max_length=3, default="USD", choices=[("USD", "USD")])
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class TenantModel(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    FINANCE = "finance", "Finance"
    MEMBER = "member", "Member"


MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})
SPEND_READER_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.FINANCE})


class Department(TenantModel):
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="department_unique_name")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Member(TenantModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="member_unique_user")
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.user.email} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGER_ROLES

    @property
    def can_read_spend(self) -> bool:
        return self.role in SPEND_READER_ROLES


class MemberLimits(TenantModel):
    """Limits an owner/admin sets on a member. They bind every key the member or their agents
    hold, whoever minted it (`core/limits.py` says how they combine with a key's own limits);
    `None` / empty means "no member-level limit". Only owners and admins write this row."""

    member = models.OneToOneField(Member, on_delete=models.CASCADE, related_name="limits")
    allowed_models = models.JSONField(null=True, blank=True)  # globs, e.g. ["gpt-4o-mini*"]
    rpm = models.PositiveIntegerField(null=True, blank=True)
    tpm = models.PositiveIntegerField(null=True, blank=True)
    key_lifetime_days = models.PositiveIntegerField(null=True, blank=True)
    keys_expire_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"limits of member {self.member_id}"


class Agent(TenantModel):
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=120)
    owner = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="agents")
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="agent_unique_slug")
        ]
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Invitation(TenantModel):
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.SET_NULL)
    # Only a SHA-256 of the link token is stored; the token itself is in the emailed link.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(Member, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "email"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_pending_per_email",
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.role}, {self.status})"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class TokenScope(models.TextChoices):
    """What a token may do, within its member's role (never more than the role allows).

    read: safe methods only. write: also changes (keys, budgets, agents, channels), but not who
    is in the workspace or which tokens exist. admin: everything the member's role allows.
    """

    READ = "read", "Read"
    WRITE = "write", "Write"
    ADMIN = "admin", "Admin"


TOKEN_SCOPE_RANK = {TokenScope.READ: 0, TokenScope.WRITE: 1, TokenScope.ADMIN: 2}


class APIToken(TenantModel):
    """A personal REST API token: one user acting in one workspace with that member's role,
    narrowed by its scope.

    Only the SHA-256 of the token is stored; the token is shown once at creation.
    """

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class AuditLog(TenantModel):
    """Append-only record of admin actions. The app role has no UPDATE/DELETE on this table
    (revoked in the migration and after every migrate), and the model refuses both in code.

    Actor and target are plain ids plus a text label, not foreign keys: removing a member must
    not rewrite (SET NULL) or cascade-delete history.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_member_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=254, blank=True, default="")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_label = models.CharField(max_length=254, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "created_at"], name="auditlog_ws_time")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id} by {self.actor_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("audit log entries are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit log entries are immutable")
