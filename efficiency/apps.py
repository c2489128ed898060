from django.apps import AppConfig


class EfficiencyConfig(AppConfig):
    name = "efficiency"
    default_auto_field = "django.db.models.BigAutoField"
