"""`GET /api/v1/usage`: the usage ledger, one row per call attempt, newest first.

Owners, admins and finance read every row; a member reads the rows attributed to them.
Filters: exact `member_id`, `agent_id`, `department_id`, `gateway_key_id`, `provider`, `model`,
`session_id`, `status_code`, `endpoint`, `estimated`; `since` / `until` (ISO 8601) on `created_at`.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from alephant.replica import ReplicaReadsMixin
from billing.models import UsageRecord
from gateway.hotpath.usage import FIELDS as USAGE_FIELDS
from workspaces.api_base import ALL_ROLES, ErrorSerializer, WorkspaceViewSet
from workspaces.models import SPEND_READER_ROLES

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class UsageRecordOut(serializers.ModelSerializer):
    cost_usd = serializers.DecimalField(max_digits=24, decimal_places=12, coerce_to_string=True)
    saved_usd = serializers.DecimalField(max_digits=24, decimal_places=12, coerce_to_string=True)

    class Meta:
        model = UsageRecord
        # The same fields the gateway puts on the usage stream (one list to keep in step).
        fields = ["id", *(name for name in USAGE_FIELDS if name != "workspace_id")]


def _when(request, name: str):
    raw = request.query_params.get(name)
    if not raw:
        return None
    value = parse_datetime(raw)
    if value is None or value.tzinfo is None:
        raise exceptions.ValidationError({name: ["Use an ISO 8601 time with a UTC offset."]})
    return value


class UsageViewSet(ReplicaReadsMixin, WorkspaceViewSet):
    queryset = UsageRecord.objects.all()
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES}
    filter_fields = {
        "member_id": ("member_id", int),
        "agent_id": ("agent_id", int),
        "department_id": ("department_id", int),
        "gateway_key_id": ("gateway_key_id", int),
        "provider": ("provider", str),
        "model": ("model", str),
        "session_id": ("session_id", str),
        "status_code": ("status_code", int),
        "endpoint": ("endpoint", str),
        "estimated": ("estimated", bool),
    }

    def narrow_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.member.role not in SPEND_READER_ROLES:
            queryset = queryset.filter(member_id=self.member.pk)
        since, until = _when(self.request, "since"), _when(self.request, "until")
        if since:
            queryset = queryset.filter(created_at__gte=since)
        if until:
            queryset = queryset.filter(created_at__lt=until)
        return queryset.order_by("-created_at", "-id")

    @extend_schema(
        responses={200: UsageRecordOut(many=True), **ERRORS},
        parameters=[
            OpenApiParameter("since", str, description="ISO 8601, inclusive"),
            OpenApiParameter("until", str, description="ISO 8601, exclusive"),
        ],
    )
    def list(self, request):
        return self.paginated(self.get_queryset(), UsageRecordOut)

    @extend_schema(responses={200: UsageRecordOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(UsageRecordOut(self.get_object()).data)
