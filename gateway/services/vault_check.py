"""Start-up check: a missing or wrong master key fails loudly, never silently.

Runs from `GatewayConfig.ready()`. It derives the master key(s) and, if the database already holds
a data key, unwraps one. A fresh database (no table yet, or no data keys) starts fine.
"""

from __future__ import annotations

import logging
import warnings

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection

from core import vault

logger = logging.getLogger(__name__)


def check_master_key() -> None:
    try:
        ring = vault.get_keyring()
    except vault.MasterKeyMissing as exc:
        raise ImproperlyConfigured(f"Alephant vault: {exc}") from exc
    try:
        with warnings.catch_warnings():
            # Django warns about queries during app initialisation; this one is deliberate.
            warnings.simplefilter("ignore", RuntimeWarning)
            from workspaces import system

            sample = system.vault_sample()
    except DatabaseError as exc:  # no database yet, or not migrated: nothing to check against
        logger.debug("vault start-up check skipped: %s", exc.__class__.__name__)
        sample = None
    finally:
        # Don't carry a connection opened at import time into forked workers; but never close
        # one that is inside a transaction (a caller's, e.g. a test).
        if not connection.in_atomic_block:
            connection.close()
    if sample is None:
        return
    workspace_id, wrapped_dek, key_version = sample
    try:
        vault.unwrap_data_key(workspace_id, wrapped_dek, key_version, keyring=ring)
    except vault.VaultError as exc:
        raise ImproperlyConfigured(
            "Alephant vault: the configured master key does not open the stored data keys "
            f"(they were wrapped under key version {key_version!r}; configured: "
            f"{[k.version for k in ring.all()]}). Set ALEPHANT_MASTER_KEY / "
            "ALEPHANT_MASTER_KEY_FILE to the right key (and ALEPHANT_MASTER_KEY_PREVIOUS during "
            "a rotation)."
        ) from exc
