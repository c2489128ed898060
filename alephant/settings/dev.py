"""Local development (`make run`, `manage.py`): the default DJANGO_SETTINGS_MODULE.

Every knob already has a safe local default in `base`; `make services` writes `.env`, which turns
on DJANGO_DEBUG (and with it private upstreams such as the simulator on 127.0.0.1). Dev-only
overrides go here, never into `base`.

ALEPHANT_ENV=production makes this module production (`prod.py`, with its refusals), so a
deployment that keeps the default DJANGO_SETTINGS_MODULE is still checked.
"""

from alephant.env import env_str

if env_str("ALEPHANT_ENV").strip().lower() in {"production", "prod"}:
    from alephant.settings.prod import *  # noqa: F403
else:
    from alephant.settings.base import *  # noqa: F403
