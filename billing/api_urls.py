urlpatterns: list = []

# Budgets, alert channels, alert history, guardrails (billing/budget_apis.py).
from billing.budget_apis import urlpatterns as _budget_urlpatterns  # noqa: E402

urlpatterns += _budget_urlpatterns
