urlpatterns: list = []

# Budgets, alert channels, alert history, guardrails (billing/budget_apis.py).
from billing.budget_apis import urlpatterns as _budget_urlpatterns  # noqa: E402

urlpatterns += _budget_urlpatterns

# The usage ledger (billing/apis.py).
from rest_framework.routers import SimpleRouter  # noqa: E402

from billing.apis import UsageViewSet  # noqa: E402

_usage_router = SimpleRouter()
_usage_router.register("usage", UsageViewSet, basename="api-usage")
urlpatterns += _usage_router.urls

# Budget increase requests (billing/request_apis.py).
from billing.request_apis import urlpatterns as _request_urlpatterns  # noqa: E402

urlpatterns += _request_urlpatterns

# Prepaid budget top-ups (billing/topup_apis.py).
from billing.topup_apis import urlpatterns as _topup_urlpatterns  # noqa: E402

urlpatterns += _topup_urlpatterns
