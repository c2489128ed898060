from django.urls import include, path

from alephant import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("accounts/", include("allauth.urls")),
    path("api/", include("alephant.api_urls")),
    path("", include("attribution.urls")),
    path("", include("billing.urls")),
    path("", include("gateway.urls")),
    path("", include("workspaces.urls")),
    path("", include("efficiency.urls")),
    path("", include("reconciliation.urls")),
]
