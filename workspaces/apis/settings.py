"""The workspace's own settings: `GET /api/v1/workspace/` (every member) and
`PATCH /api/v1/workspace/` (owners and admins, token scope admin). The `/settings/` page
calls the same service."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from workspaces.api_base import ALL_ROLES, WorkspaceViewSet
from workspaces.apis.common import ERRORS
from workspaces.models import MANAGER_ROLES, AuditLog, TokenScope, Workspace, validate_time_zone
from workspaces.services.settings import workspace_update


class WorkspaceOut(serializers.ModelSerializer):
    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "time_zone", "currency", "created_at"]


class WorkspaceIn(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    time_zone = serializers.CharField(
        max_length=64, required=False, help_text="An IANA zone name, e.g. Europe/Paris."
    )

    def validate_time_zone(self, value: str) -> str:
        try:
            validate_time_zone(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return value


class WorkspaceSettingsViewSet(WorkspaceViewSet):
    """This workspace's name and time zone (periods, charts and budget resets follow the zone)."""

    queryset = AuditLog.objects.none()  # no list of rows here: the workspace itself
    action_roles = {"retrieve": ALL_ROLES, "partial_update": MANAGER_ROLES}
    write_scope = TokenScope.ADMIN

    @extend_schema(responses={200: WorkspaceOut, **ERRORS})
    def retrieve(self, request):
        return Response(WorkspaceOut(self.workspace).data)

    @extend_schema(request=WorkspaceIn, responses={200: WorkspaceOut, **ERRORS})
    def partial_update(self, request):
        data = WorkspaceIn(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = workspace_update(
            workspace=self.workspace,
            actor=self.member,
            name=data.validated_data.get("name", self.workspace.name),
            time_zone=data.validated_data.get("time_zone", self.workspace.time_zone),
        )
        return Response(WorkspaceOut(workspace).data)
