from django.apps import AppConfig


class EfficiencyConfig(AppConfig):
    name = "efficiency"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Response-cache opt-ins ride in the workspace snapshot the gateway reads.
        from efficiency.snapshots import register

        register()
