"""Everything under /api/: the versioned REST API plus its OpenAPI schema and docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its init script as a URL: no inline script, so CSP allows it.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/", include("workspaces.api_urls")),
    path("v1/", include("gateway.api_urls")),
    path("v1/", include("billing.api_urls")),
    path("v1/", include("attribution.api_urls")),
    path("v1/", include("efficiency.api_urls")),
    path("v1/", include("reconciliation.api_urls")),
]
