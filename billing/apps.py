from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # why: both import models, which load only once the app registry is ready.
        from billing import snapshots, tasks

        # Budgets ride in the workspace snapshot the gateway enforces from.
        snapshots.register()
        # The alert services enqueue deliveries by task name (billing.tasks imports them, so
        # they cannot import it back): make sure every process has the task registered.
        tasks.register()
