from django.urls import path
from rest_framework.routers import SimpleRouter

from efficiency import apis

router = SimpleRouter()
router.register("efficiency/cache-policies", apis.CachePolicyViewSet, basename="api-cache-policies")

list_view = apis.EfficiencyViewSet.as_view({"get": "list"})
detail_view = apis.EfficiencyViewSet.as_view({"get": "retrieve"})

recompute_view = apis.EfficiencyRecomputeViewSet.as_view({"post": "create"})
settings_view = apis.EfficiencySettingsViewSet.as_view({"get": "show", "put": "put"})

urlpatterns = [
    path("efficiency/recompute/", recompute_view, name="api-efficiency-recompute"),
    path("efficiency/settings/", settings_view, name="api-efficiency-settings"),
    *router.urls,
    # `GET /api/v1/efficiency` as the issue names it; one spelling each, for one operationId.
    path("efficiency", list_view, name="api-efficiency"),
    path("efficiency/<int:pk>", detail_view, name="api-efficiency-detail"),
]
