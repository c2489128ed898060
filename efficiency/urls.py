from django.urls import path

from efficiency import views

urlpatterns = [
    path("efficiency/", views.ranking, name="efficiency"),
    path("efficiency/recompute/", views.recompute, name="efficiency-recompute"),
    path("efficiency/cache/", views.cache_settings, name="efficiency-cache"),
    path("efficiency/floors/", views.floor_settings, name="efficiency-floors"),
    path("efficiency/<str:kind>/<int:pk>/", views.entity_detail, name="efficiency-detail"),
]
