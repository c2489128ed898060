from django.urls import path

from efficiency import apis

list_view = apis.EfficiencyViewSet.as_view({"get": "list"})
detail_view = apis.EfficiencyViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("efficiency", list_view, name="api-efficiency"),
    path("efficiency/", list_view),
    path("efficiency/<int:pk>", detail_view, name="api-efficiency-detail"),
    path("efficiency/<int:pk>/", detail_view),
]
