"""Budget and alert-channel pages."""

from django.urls import path

from billing import views

urlpatterns = [
    path("manage/budgets/", views.budgets_manage, name="manage-budgets"),
    path("manage/budgets/<int:pk>/", views.budget_edit, name="manage-budget"),
    path("manage/budgets/<int:pk>/delete/", views.budget_delete_view, name="manage-budget-delete"),
    path("manage/channels/", views.channels, name="manage-channels"),
    path("manage/channels/<int:pk>/test/", views.channel_test, name="manage-channel-test"),
    path("manage/channels/<int:pk>/delete/", views.channel_delete, name="manage-channel-delete"),
]
