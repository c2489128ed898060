"""Departments and agents."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from workspaces.api_base import (
    ALL_ROLES,
    WorkspaceViewSet,
    id_in_workspace,
)
from workspaces.apis.common import ERRORS, id_field
from workspaces.models import (
    Agent,
    Department,
    Member,
)
from workspaces.services import directory


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
    owner_id = id_field(required=False, help_text="Defaults to you. Admins may pick anyone.")
    department_id = id_field(required=False, allow_null=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class AgentUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    owner_id = id_field(required=False)
    department_id = id_field(required=False, allow_null=True)
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
