"""A logging filter that masks credentials which travel inside URLs and headers.

Slack incoming-webhook URLs are credentials, webhook signing keys start `whsec_`, API tokens
`alpt_`, gateway keys `sk-alephant-`/`alk_`: none of them may reach a log line, whoever logs it
(our code, httpx, a library's exception text). Install on every handler (LOGGING `filters`).
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"'<>]+"), r"\1[masked]"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9_\-]{8,}"), r"\1[masked]"),
    (re.compile(r"\b(alpt_[A-Za-z0-9]{8}_)[A-Za-z0-9]{8,}"), r"\1[masked]"),
    (re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"), r"\1[masked]"),
    # scheme://user:password@host (database, Redis, broker URLs): keep the user, drop the password.
    (re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"'<>]*:)[^\s@/\"'<>]+@"), r"\1[masked]@"),
]


def mask(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretMaskingFilter(logging.Filter):
    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        # A traceback repeats the exception message (a connection URL, say): format it here,
        # masked; handlers' formatters reuse exc_text instead of formatting exc_info again.
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def quiet_http_client_loggers() -> None:
    """httpx logs every request URL at INFO (a Slack URL is a credential): warnings only."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
