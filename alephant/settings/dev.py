"""Local development (`make run`, `manage.py`): the default DJANGO_SETTINGS_MODULE.

Every knob already has a safe local default in `base`; `make services` writes `.env`, which turns
on DJANGO_DEBUG (and with it private upstreams such as the simulator on 127.0.0.1). Dev-only
overrides go here, never into `base`.
"""

from alephant.settings.base import *  # noqa: F403
