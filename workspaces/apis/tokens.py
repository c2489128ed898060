"""The audit log and personal API tokens."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from workspaces.api_base import (
    ALL_ROLES,
    WorkspaceViewSet,
)
from workspaces.apis.common import ERRORS
from workspaces.models import (
    MANAGER_ROLES,
    APIToken,
    AuditLog,
    TokenScope,
)
from workspaces.services.tokens import api_token_create, api_token_revoke


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
