from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # why: both import models, which load only once the app registry is ready.
        from billing import snapshots, tasks
        from billing.services.partitions import ledger_partitions_after_migrate

        # Budgets ride in the workspace snapshot the gateway enforces from.
        snapshots.register()
        # The alert services enqueue deliveries by task name (billing.tasks imports them, so
        # they cannot import it back): make sure every process has the task registered.
        tasks.register()
        # Infrastructure, like the app-role grants: the ledger's coming month partitions.
        post_migrate.connect(ledger_partitions_after_migrate, sender=self)
