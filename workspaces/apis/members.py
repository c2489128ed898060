"""Members (role, department, limits) and invitations."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from workspaces.api_base import (
    ALL_ROLES,
    WorkspaceViewSet,
    id_in_workspace,
)
from workspaces.apis.common import ERRORS, id_field
from workspaces.models import (
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


class MemberOut(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")

    class Meta:
        model = Member
        fields = ["id", "user_id", "email", "name", "role", "department_id", "created_at"]


class MemberUpdateIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    department_id = id_field(required=False, allow_null=True)


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
    department_id = id_field(required=False, allow_null=True)


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
