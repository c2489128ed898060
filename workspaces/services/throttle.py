"""Rate limits on actions that send mail or probe the network, per workspace and per user.

Invitations and test alerts send operator-branded mail (or posts) to addresses the caller picks;
"test connection" makes an outbound request on demand. Each is counted in Redis in a fixed
window, once for the workspace and once for the user (across all their workspaces), and refused
past either limit with a `RateLimited` that says when to retry: the API answers 429 with
`Retry-After`, pages show it as a form error (it is a ValidationError).

Limits are `(count, window seconds)`; override per action with the Django setting
`ALEPHANT_THROTTLES = {"invitation": {"workspace": (50, 3600), "user": (20, 3600)}, ...}`.
If Redis cannot be reached the action is refused (these are never urgent; probing is the abuse).
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.core.exceptions import ValidationError

from core.redisclients import sync_client

logger = logging.getLogger(__name__)

DEFAULT_LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    "invitation": {"workspace": (50, 3600), "user": (20, 3600)},
    "alert_test": {"workspace": (20, 3600), "user": (5, 600)},
    "provider_test": {"workspace": (30, 3600), "user": (10, 600)},
}
_REDIS_DOWN_RETRY_S = 60
_client: redis.Redis | None = None


class RateLimited(ValidationError):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__({"non_field_errors": [message]})
        self.retry_after = max(1, int(retry_after))
        self.detail = message


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = sync_client(settings.REDIS_URL, socket_timeout=2)
    return _client


def _limits(action: str) -> dict[str, tuple[int, int]]:
    overrides = getattr(settings, "ALEPHANT_THROTTLES", {}) or {}
    return {**DEFAULT_LIMITS[action], **overrides.get(action, {})}


def _hit(key: str, limit: int, window_s: int) -> int:
    """Count one attempt; return 0 if within the limit, else the seconds until the window ends."""
    pipe = _redis().pipeline(transaction=True)
    pipe.set(key, 0, ex=window_s, nx=True)
    pipe.incr(key)
    pipe.ttl(key)
    _, count, ttl = pipe.execute()
    return 0 if count <= limit else max(int(ttl), 1)


def action_throttle(*, action: str, workspace_id: int, user_id: int | None) -> None:
    """Count one `action` for the workspace and the user; raise RateLimited past a limit."""
    limits = _limits(action)
    # The user first: a user refused by their own limit does not use up the workspace's.
    subjects = [("workspace", f"w{int(workspace_id)}")]
    if user_id is not None:
        subjects.insert(0, ("user", f"u{int(user_id)}"))
    try:
        for kind, ident in subjects:
            wait = _hit(f"alephant:rl:{action}:{ident}", *limits[kind])
            if wait:
                raise RateLimited(
                    f"Too many attempts; try again in {wait} seconds.", retry_after=wait
                )
    except redis.RedisError:
        logger.warning("throttle: Redis unavailable, refusing %s", action)
        raise RateLimited(
            "This action is unavailable right now; try again in a minute.",
            retry_after=_REDIS_DOWN_RETRY_S,
        ) from None
