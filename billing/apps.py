from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Budgets ride in the workspace snapshot the gateway enforces from.
        from billing.snapshots import register

        register()
