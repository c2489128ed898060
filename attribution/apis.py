"""`GET /api/v1/spend`: spend for a period, grouped by one dimension, from the rollups."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from alephant.replica import ReplicaReadsMixin
from attribution import selectors
from attribution.models import Dimension, UsageRollup
from attribution.periods import KINDS, period_from_params
from workspaces.api_base import ALL_ROLES, ErrorSerializer, WorkspaceViewSet
from workspaces.models import SPEND_READER_ROLES

GROUPS = [d for d in Dimension.values if d != Dimension.WORKSPACE]


class TotalsOut(serializers.Serializer):
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=24, decimal_places=12, source="cost")
    saved_usd = serializers.DecimalField(max_digits=24, decimal_places=12, source="saved")
    errors = serializers.IntegerField()  # type: ignore[assignment]
    cache_hits = serializers.IntegerField()


class GroupOut(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    totals = TotalsOut()
    share_pct = serializers.DecimalField(max_digits=6, decimal_places=1, source="share")


class PointOut(serializers.Serializer):
    bucket_start = serializers.DateTimeField()
    cost_usd = serializers.DecimalField(max_digits=24, decimal_places=12)


class PeriodOut(serializers.Serializer):
    kind = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField(source="last_day")
    time_zone = serializers.CharField(source="tz.key")


class SpendOut(serializers.Serializer):
    period = PeriodOut()
    total = TotalsOut()
    previous_total = TotalsOut()
    group_by = serializers.CharField()
    groups = GroupOut(many=True)
    series = PointOut(many=True)


class SpendViewSet(ReplicaReadsMixin, WorkspaceViewSet):
    """Spend of the workspace (owners, admins, finance) or of the caller (members)."""

    queryset = UsageRollup.objects.all()
    action_roles = {"list": ALL_ROLES}

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, enum=list(KINDS), description="Default: month."),
            OpenApiParameter("date", str, description="A day in the period (YYYY-MM-DD)."),
            OpenApiParameter("start", str, description="custom: first day (YYYY-MM-DD)."),
            OpenApiParameter("end", str, description="custom: last day, inclusive."),
            OpenApiParameter("group_by", str, enum=GROUPS, description="Default: member."),
        ],
        responses={200: SpendOut, 400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer},
    )
    def list(self, request):
        ws = self.workspace
        period = period_from_params(request.query_params, tz=ws.tz, now=timezone.now())
        group_by = request.query_params.get("group_by", "member")
        if group_by not in GROUPS:
            raise serializers.ValidationError({"group_by": [f"one of {', '.join(GROUPS)}"]})
        if self.member.role in SPEND_READER_ROLES:
            dimension, key = "workspace", ""
            groups = selectors.top_rows(
                workspace=ws, period=period, dimension=group_by, limit=500, with_spark=False
            )
        else:  # a member: their own spend only
            dimension, key = "member", str(self.member.pk)
            group_by = "model"
            groups = selectors.breakdown(
                workspace=ws, period=period, dimension=dimension, key=key, by="model"
            )
        data = {
            "period": period,
            "total": selectors.spend_totals(
                workspace=ws, period=period, dimension=dimension, key=key
            ),
            "previous_total": selectors.spend_totals(
                workspace=ws, period=period.previous(), dimension=dimension, key=key
            ),
            "group_by": group_by,
            "groups": groups,
            "series": [
                {"bucket_start": b, "cost_usd": c}
                for b, c in selectors.spend_series(
                    workspace=ws, period=period, dimension=dimension, key=key
                )
            ],
        }
        return Response(SpendOut(data).data)
