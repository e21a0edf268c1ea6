"""Keep secrets in URLs out of the server's log.

Jupyter scrubs its access log, but tornado's own lines do not: a refused request is logged as
``403 GET /user/a/api/status?token=<token> (ip): ...`` and an uncaught error with the whole request, so a
websocket token or an OAuth code and state would land in the user's server log. A filter on tornado's
loggers replaces those values with ``[secret]`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

from tornado.log import access_log, app_log, gen_log

# query parameters whose name contains one of these words (jupyter's own scrub list, plus "secret")
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;][^=&;\s#'\"]*(?:token|auth|key|code|state|xsrf|secret)[^=&;\s#'\"]*=)[^&;\s#'\"]+",
    re.IGNORECASE,
)


def scrub(text: str) -> str:
    """``text`` with every secret-looking query value replaced by ``[secret]``."""
    return _SECRET_PARAM.sub(lambda m: m.group("name") + "[secret]", text)


class ScrubSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = ScrubSecrets()


def install() -> None:
    """Filter tornado's loggers (idempotent: logging keeps one copy of a filter)."""
    for logger in (gen_log, app_log, access_log):
        logger.addFilter(_FILTER)
