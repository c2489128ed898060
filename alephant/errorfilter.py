"""The exception reporter filter for debug pages and error mails: no credential in any mode.

Django's SafeExceptionReporterFilter hides settings whose *name* looks secret (KEY, PASS, ...).
Connection URLs carry passwords under names it does not know (DATABASE_OWNER_URL, REDIS_URL,
CELERY_BROKER_URL, a Sentry DSN), and a password can sit inside any value (a dict, a frame
variable, the WSGI environ). So: names with URL/DSN/OWNER are hidden too, and every string shown
is passed through `core.logmask.mask`, which drops the password of `scheme://user:password@`.
The exception message itself ("could not connect to postgres://u:p@h") is no setting or
variable: the reporter masks the rendered page and text as a last pass.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from core.logmask import mask


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(item) for item in value)
    return value


class CredentialSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|DSN|OWNER|LOCATION", flags=re.I
    )

    def cleanse_setting(self, key, value):
        return _masked(super().cleanse_setting(key, value))

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        # Frame locals are shown as repr() later: mask the strings inside them now.
        return [(name, _masked(value)) for name, value in variables]

    def get_post_parameters(self, request):
        # Django cleanses POST only when DEBUG is off; a provider secret typed into a form that
        # then fails must not show on the debug page either.
        params = super().get_post_parameters(request)
        if not params or not hasattr(params, "getlist"):
            return params
        cleansed = params.copy()
        for name in list(cleansed):
            if self.hidden_settings.search(name):
                cleansed[name] = self.cleansed_substitute
            else:
                cleansed.setlist(name, [_masked(v) for v in cleansed.getlist(name)])
        return cleansed


class CredentialSafeExceptionReporter(ExceptionReporter):
    def get_traceback_html(self):
        return mask(str(super().get_traceback_html()))

    def get_traceback_text(self):
        return mask(str(super().get_traceback_text()))
