"""Key limits: how a key's own limits, its member's limits and the workspace floor combine.

One rule, used by Django (mint-time checks, the key snapshot it publishes to Redis) and by the
gateway's request path (matching a model against every allow-list): every source can only
narrow what the others allow, never widen or replace it.

* allowed models: a call's model must match **every** non-empty allow-list (key, member);
* rpm / tpm: the smallest set value (a key's rpm also never exceeds the workspace floor,
  which the Enforcer applies because the floor lives in the workspace snapshot);
* expiry: the earliest of the key's `expires_at`, `created_at + member.key_lifetime_days` and
  the member's `keys_expire_at`.

Django-free and free of first-party imports: the hot path imports it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limits:
    """One source's limits; `None` means "this source sets no limit"."""

    allowed_models: Sequence[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    expires_at: datetime | None = None


def _smallest(values: Iterable[int | None]) -> int | None:
    present = [int(v) for v in values if v]
    return min(present) if present else None


def _earliest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def member_key_expiry(
    *,
    created_at: datetime,
    key_lifetime_days: int | None,
    keys_expire_at: datetime | None,
) -> datetime | None:
    """The latest a key created at `created_at` may live under its member's limits."""
    lifetime_end = (
        created_at + timedelta(days=int(key_lifetime_days)) if key_lifetime_days else None
    )
    return _earliest((lifetime_end, keys_expire_at))


def effective(*sources: Limits) -> tuple[list[list[str]], int | None, int | None, datetime | None]:
    """(allow-lists that must all match, rpm, tpm, expiry) of several sources combined."""
    allowlists = [list(s.allowed_models) for s in sources if s.allowed_models]
    return (
        allowlists,
        _smallest(s.rpm for s in sources),
        _smallest(s.tpm for s in sources),
        _earliest(s.expires_at for s in sources),
    )


def model_in_allowlists(allowlists: Iterable[Sequence[str]], names: Sequence[str]) -> bool:
    """True if, for every allow-list, one of the model's `names` matches one of its globs."""
    return all(
        any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)
        for patterns in allowlists
        if patterns
    )


def glob_within(pattern: str, allowed: Sequence[str]) -> bool:
    """Whether every model `pattern` matches is matched by some glob in `allowed` (conservative:
    a plain name must match a glob; a glob must be one of `allowed` or lie under a glob of it
    whose wildcard is a trailing `*`, e.g. `gpt-4o-mini*` under `gpt-4o*`). The request path
    checks every call against the member's allow-list anyway; this only refuses at mint time
    what could never be used."""
    if not any(char in pattern for char in "*?["):
        return any(fnmatch.fnmatchcase(pattern, glob) for glob in allowed)
    for glob in allowed:
        if pattern == glob or glob == "*":
            return True
        if (
            glob.endswith("*")
            and not any(c in glob[:-1] for c in "*?[")
            and pattern.startswith(glob[:-1])
        ):
            return True
    return False
