"""No log line carries a credential.

Tokens never travel in our URLs (the chat socket authenticates by header or first frame),
but a client may still put one there, or in a header a library logs. This filter rewrites
uvicorn's access and error records before any handler formats them: bearer
tokens, JWT-shaped strings and the values of token- or password-named query parameters
become ``[redacted]``. It runs only for records that pass the level check, so a server
logging at WARNING pays nothing per request.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_SECRETS = re.compile(
    r"(?i)(?P<param>[?&;][^=&\s\"]*(?:token|password|secret|auth)[^=&\s\"]*=)[^&\s\"]*"
    r"|(?P<bearer>bearer\s+)[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)
REDACTED = "[redacted]"
# Logger filters see only their own logger's records: uvicorn logs on exactly these
# names. memlayer's own modules never log a token (tests hold them to it).
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        prefix = match.group("param") or match.group("bearer") or ""
        return prefix + REDACTED

    return _SECRETS.sub(replace, text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        return True


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def install_log_redaction() -> None:
    """Add the filter to uvicorn's loggers (once per process)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
