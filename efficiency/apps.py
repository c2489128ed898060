from django.apps import AppConfig


class EfficiencyConfig(AppConfig):
    name = "efficiency"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # why: efficiency.snapshots imports models, which load only once the registry is ready.
        from efficiency.snapshots import register

        # Response-cache opt-ins ride in the workspace snapshot the gateway reads.
        register()
