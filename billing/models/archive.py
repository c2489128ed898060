"""Ledger months archived by retention (`billing.services.ledger_retention`).

One row per month whose partition was written to its archive file and dropped, written in the
same transaction as the drop. The rollups read it to know which windows hold history that is no
longer in the ledger (see `attribution.services.archived`). Not tenant data: the month, the
partition's name and file, and the ledger's highest id at the time; no per-tenant figure.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class LedgerArchive(models.Model):
    month = models.DateTimeField(unique=True)  # first instant (UTC) of the archived month
    partition = models.CharField(max_length=64)
    file = models.CharField(max_length=1024)  # the archive file, as written
    # max(id) of the whole ledger when the month was dropped: a row with a higher id arrived
    # after the archive (one with a lower id was already counted by the rollups).
    last_record_id = models.BigIntegerField()
    archived_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["month"]

    def __str__(self) -> str:
        return f"{self.partition} -> {self.file}"
