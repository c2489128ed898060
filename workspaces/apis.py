"""REST API for the workspace directory: members, invitations, departments, agents, audit log
and personal API tokens. Every view is a `WorkspaceViewSet` (scope, roles, 404s, error shape);
writes go through services, which also append the audit entries."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from workspaces.api_base import (
    ALL_ROLES,
    ErrorSerializer,
    WorkspaceViewSet,
    id_in_workspace,
)
from workspaces.models import (
    MANAGER_ROLES,
    Agent,
    APIToken,
    AuditLog,
    Department,
    Invitation,
    Member,
    Role,
    TokenScope,
)
from workspaces.services import directory
from workspaces.services.limits import (
    MAX_INT,
    MAX_LIFETIME_DAYS,
    member_limits_of,
    member_limits_set,
)
from workspaces.services.tokens import api_token_create, api_token_revoke

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def _id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=2**63 - 1, **kwargs)


# --- members --------------------------------------------------------------------------------


class MemberOut(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")

    class Meta:
        model = Member
        fields = ["id", "user_id", "email", "name", "role", "department_id", "created_at"]


class MemberUpdateIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    department_id = _id_field(required=False, allow_null=True)


class MemberLimitsIn(serializers.Serializer):
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=200,
        required=False,
        allow_null=True,
        help_text="Model names or globs (`gpt-4o-mini*`) the member's keys may call; null: any.",
    )
    rpm = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False, allow_null=True)
    tpm = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False, allow_null=True)
    key_lifetime_days = serializers.IntegerField(
        min_value=1,
        max_value=MAX_LIFETIME_DAYS,
        required=False,
        allow_null=True,
        help_text="A key of this member expires at most this many days after it was created.",
    )
    keys_expire_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Every key of this member expires by then."
    )


class MemberLimitsOut(MemberLimitsIn):
    member_id = serializers.IntegerField()
    updated_at = serializers.DateTimeField(allow_null=True)


def _limits_out(member: Member) -> dict:
    row = member_limits_of(member=member)
    return MemberLimitsOut(
        {
            "member_id": member.pk,
            "allowed_models": row.allowed_models if row else None,
            "rpm": row.rpm if row else None,
            "tpm": row.tpm if row else None,
            "key_lifetime_days": row.key_lifetime_days if row else None,
            "keys_expire_at": row.keys_expire_at if row else None,
            "updated_at": row.updated_at if row else None,
        }
    ).data


class MemberViewSet(WorkspaceViewSet):
    """Members of the workspace. Everyone reads; owners/admins change roles, limits and remove."""

    queryset = Member.objects.select_related("user", "department")
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES, "limits": ALL_ROLES}
    write_scope = TokenScope.ADMIN
    filter_fields = {"role": ("role", str), "department_id": ("department_id", int)}

    @extend_schema(responses={200: MemberOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), MemberOut)

    @extend_schema(responses={200: MemberOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(MemberOut(self.get_object()).data)

    @extend_schema(request=MemberUpdateIn, responses={200: MemberOut, **ERRORS})
    def partial_update(self, request, pk=None):
        member = self.get_object()
        data = MemberUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        changes = {}
        if "role" in data.validated_data:
            changes["role"] = data.validated_data["role"]
        if "department_id" in data.validated_data:
            changes["department"] = id_in_workspace(
                Department,
                data.validated_data["department_id"],
                workspace=self.workspace,
                field="department_id",
            )
        member = directory.member_update(member=member, actor=self.member, **changes)
        return Response(MemberOut(member).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        directory.member_remove(member=self.get_object(), actor=self.member)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: MemberLimitsOut, **ERRORS})
    @action(detail=True, methods=["get"], url_path="limits")
    def limits(self, request, pk=None):
        """A member's limits: owners/admins read anyone's, a member only their own."""
        member = self.get_object()
        if not self.member.can_manage and member.pk != self.member.pk:
            raise Http404("Not found.")
        return Response(_limits_out(member))

    @extend_schema(request=MemberLimitsIn, responses={200: MemberLimitsOut, **ERRORS})
    @limits.mapping.patch
    def limits_update(self, request, pk=None):
        """Set a member's limits (owners/admins): every key the member or their agents hold,
        whoever minted it, is bound within about a second. `null` clears a limit."""
        member = self.get_object()
        data = MemberLimitsIn(data=request.data)
        data.is_valid(raise_exception=True)
        member_limits_set(member=member, actor=self.member, **data.validated_data)
        return Response(_limits_out(member))


# --- invitations ----------------------------------------------------------------------------


class InvitationOut(serializers.ModelSerializer):
    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "department_id",
            "status",
            "invited_by_id",
            "created_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
        ]


class InvitationCreateOut(InvitationOut):
    url = serializers.CharField(help_text="The invitation link. Returned only once, here.")

    class Meta(InvitationOut.Meta):
        fields = [*InvitationOut.Meta.fields, "url"]


class InvitationCreateIn(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
    department_id = _id_field(required=False, allow_null=True)


class InvitationViewSet(WorkspaceViewSet):
    """Email invitations. Owners/admins only."""

    queryset = Invitation.objects.all()
    filter_fields = {"email": ("email__iexact", str), "role": ("role", str)}
    write_scope = TokenScope.ADMIN

    @extend_schema(responses={200: InvitationOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), InvitationOut)

    @extend_schema(responses={200: InvitationOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(InvitationOut(self.get_object()).data)

    @extend_schema(request=InvitationCreateIn, responses={201: InvitationCreateOut, **ERRORS})
    def create(self, request):
        data = InvitationCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        department = id_in_workspace(
            Department,
            data.validated_data.get("department_id"),
            workspace=self.workspace,
            field="department_id",
        )
        issued = directory.invitation_send(
            workspace=self.workspace,
            actor=self.member,
            email=data.validated_data["email"],
            role=data.validated_data["role"],
            department=department,
        )
        body = dict(InvitationOut(issued.invitation).data, url=issued.url)
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: InvitationOut, **ERRORS})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        invitation = directory.invitation_withdraw(invitation=self.get_object(), actor=self.member)
        return Response(InvitationOut(invitation).data)


# --- departments ----------------------------------------------------------------------------


class DepartmentOut(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "name", "created_at"]


class DepartmentIn(serializers.Serializer):
    name = serializers.CharField(max_length=120)


class DepartmentViewSet(WorkspaceViewSet):
    """Departments. Everyone reads; owners/admins write."""

    queryset = Department.objects.all()
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES}
    filter_fields = {"name": ("name", str)}

    @extend_schema(responses={200: DepartmentOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), DepartmentOut)

    @extend_schema(responses={200: DepartmentOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(DepartmentOut(self.get_object()).data)

    @extend_schema(request=DepartmentIn, responses={201: DepartmentOut, **ERRORS})
    def create(self, request):
        data = DepartmentIn(data=request.data)
        data.is_valid(raise_exception=True)
        department = directory.department_add(
            workspace=self.workspace, name=data.validated_data["name"], actor=self.member
        )
        return Response(DepartmentOut(department).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DepartmentIn, responses={200: DepartmentOut, **ERRORS})
    def partial_update(self, request, pk=None):
        department = self.get_object()
        data = DepartmentIn(data=request.data)
        data.is_valid(raise_exception=True)
        department = directory.department_rename(
            department=department, name=data.validated_data["name"], actor=self.member
        )
        return Response(DepartmentOut(department).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        directory.department_delete(department=self.get_object(), actor=self.member)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- agents ---------------------------------------------------------------------------------


class AgentOut(serializers.ModelSerializer):
    class Meta:
        model = Agent
        fields = ["id", "slug", "name", "owner_id", "department_id", "description", "created_at"]


class AgentCreateIn(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=120)
    owner_id = _id_field(required=False, help_text="Defaults to you. Admins may pick anyone.")
    department_id = _id_field(required=False, allow_null=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class AgentUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    owner_id = _id_field(required=False)
    department_id = _id_field(required=False, allow_null=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class AgentViewSet(WorkspaceViewSet):
    """Agents. Everyone reads and creates their own; owners/admins manage anyone's."""

    queryset = Agent.objects.all()
    default_roles = ALL_ROLES
    filter_fields = {
        "slug": ("slug", str),
        "owner_id": ("owner_id", int),
        "department_id": ("department_id", int),
    }

    @extend_schema(responses={200: AgentOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), AgentOut)

    @extend_schema(responses={200: AgentOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(AgentOut(self.get_object()).data)

    @extend_schema(request=AgentCreateIn, responses={201: AgentOut, **ERRORS})
    def create(self, request):
        data = AgentCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        agent = directory.agent_add(
            workspace=self.workspace,
            actor=self.member,
            slug=v["slug"],
            name=v["name"],
            owner=id_in_workspace(
                Member, v.get("owner_id"), workspace=self.workspace, field="owner_id"
            ),
            department=id_in_workspace(
                Department, v.get("department_id"), workspace=self.workspace, field="department_id"
            ),
            description=v.get("description", ""),
        )
        return Response(AgentOut(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentUpdateIn, responses={200: AgentOut, **ERRORS})
    def partial_update(self, request, pk=None):
        agent = self.get_object()
        data = AgentUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        changes = {}
        if "owner_id" in v:
            changes["owner"] = id_in_workspace(
                Member, v.pop("owner_id"), workspace=self.workspace, field="owner_id"
            )
        if "department_id" in v:
            changes["department"] = id_in_workspace(
                Department,
                v.pop("department_id"),
                workspace=self.workspace,
                field="department_id",
            )
        agent = directory.agent_update(agent=agent, actor=self.member, **changes, **v)
        return Response(AgentOut(agent).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        directory.agent_delete(agent=self.get_object(), actor=self.member)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- audit log ------------------------------------------------------------------------------


class AuditLogOut(serializers.ModelSerializer):
    class Meta:
        model = AuditLog
        fields = [
            "id",
            "created_at",
            "actor_member_id",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "before",
            "after",
        ]


class AuditLogViewSet(WorkspaceViewSet):
    """Append-only history of admin actions, newest first. Owners/admins read; nobody writes."""

    queryset = AuditLog.objects.all()
    default_roles = MANAGER_ROLES
    filter_fields = {
        "action": ("action", str),
        "target_type": ("target_type", str),
        "target_id": ("target_id", str),
        "actor_member_id": ("actor_member_id", int),
    }

    @extend_schema(responses={200: AuditLogOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), AuditLogOut)

    @extend_schema(responses={200: AuditLogOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(AuditLogOut(self.get_object()).data)


# --- API tokens -----------------------------------------------------------------------------


class APITokenOut(serializers.ModelSerializer):
    class Meta:
        model = APIToken
        fields = [
            "id",
            "name",
            "prefix",
            "member_id",
            "scope",
            "status",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]


class APITokenCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(
        choices=TokenScope.choices,
        help_text="read: GET only; write: also change keys, budgets, agents, channels; "
        "admin: also members, invitations and tokens. Always within your role.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class APITokenCreateOut(APITokenOut):
    token = serializers.CharField(help_text="The token itself. Returned only once, here.")

    class Meta(APITokenOut.Meta):
        fields = [*APITokenOut.Meta.fields, "token"]


class APITokenViewSet(WorkspaceViewSet):
    """Your personal API tokens for this workspace (owners/admins see and revoke everyone's)."""

    queryset = APIToken.objects.all()
    default_roles = ALL_ROLES
    filter_fields = {"member_id": ("member_id", int)}
    write_scope = TokenScope.ADMIN

    def narrow_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.member.can_manage:
            return queryset
        return queryset.filter(member=self.member)

    @extend_schema(responses={200: APITokenOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), APITokenOut)

    @extend_schema(responses={200: APITokenOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(APITokenOut(self.get_object()).data)

    @extend_schema(request=APITokenCreateIn, responses={201: APITokenCreateOut, **ERRORS})
    def create(self, request):
        data = APITokenCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = api_token_create(
            member=self.member,
            name=data.validated_data["name"],
            scope=data.validated_data["scope"],
            expires_at=data.validated_data.get("expires_at"),
        )
        body = dict(APITokenOut(token).data, token=raw)
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: APITokenOut, **ERRORS})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = api_token_revoke(token=self.get_object(), actor=self.member)
        return Response(APITokenOut(token).data)
