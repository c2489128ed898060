"""Budget and alert-channel pages."""

from django.urls import path

from billing import request_views, topup_views, views

urlpatterns = [
    path("manage/budgets/", views.budgets_manage, name="manage-budgets"),
    path("manage/budgets/<int:pk>/", views.budget_edit, name="manage-budget"),
    path("manage/budgets/<int:pk>/delete/", views.budget_delete_view, name="manage-budget-delete"),
    path(
        "manage/budgets/<int:pk>/top-up/",
        topup_views.budget_top_up_view,
        name="manage-budget-top-up",
    ),
    path(
        "manage/budgets/<int:pk>/reset/", topup_views.budget_reset_view, name="manage-budget-reset"
    ),
    path("manage/channels/", views.channels, name="manage-channels"),
    path("manage/channels/<int:pk>/test/", views.channel_test, name="manage-channel-test"),
    path("manage/channels/<int:pk>/delete/", views.channel_delete, name="manage-channel-delete"),
    path("budget-requests/", request_views.requests_page, name="budget-requests"),
    path("budget-requests/new/", request_views.request_new, name="budget-request-new"),
    path(
        "budget-requests/<int:pk>/approve/",
        request_views.request_decide,
        {"verdict": "approve"},
        name="budget-request-approve",
    ),
    path(
        "budget-requests/<int:pk>/deny/",
        request_views.request_decide,
        {"verdict": "deny"},
        name="budget-request-deny",
    ),
    path(
        "budget-requests/link/<str:token>/", request_views.request_link, name="budget-request-link"
    ),
]
