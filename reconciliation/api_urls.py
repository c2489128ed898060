from django.urls import re_path
from rest_framework.routers import SimpleRouter

from reconciliation import apis, key_apis

router = SimpleRouter()
router.register(
    "reconciliation/admin-keys", apis.AdminKeyViewSet, basename="api-reconciliation-admin-keys"
)

router.register(
    "reconciliation/key-links", key_apis.KeyLinkViewSet, basename="api-reconciliation-key-links"
)

urlpatterns = [
    re_path(
        r"^reconciliation/?$",
        apis.ReconciliationViewSet.as_view({"get": "list"}),
        name="api-reconciliation",
    ),
    re_path(
        r"^reconciliation/policy/?$",
        apis.PolicyViewSet.as_view({"get": "list", "post": "create"}),
        name="api-reconciliation-policy",
    ),
    re_path(
        r"^exports/focus/?$",
        apis.FocusExportViewSet.as_view({"get": "list"}),
        name="api-export-focus",
    ),
    *router.urls,
]
