"""Error answers the proxy writes itself: CHP's ``--error-target`` fetch, ``--error-path`` files, or built-ins."""

from __future__ import annotations

import html
import logging
import os
from urllib.parse import quote

from .fetch import fetch
from .wire import REASONS, simple_response

log = logging.getLogger("hubkit_proxy")


class ErrorPages:
    def __init__(self, error_target: str | None, error_path: str | None) -> None:
        self.error_target = error_target.rstrip("/") + "/" if error_target else None
        self.pages: dict[str, bytes] = {}
        if error_path:  # read once at start: error answers must not block the loop on disk
            for name in os.listdir(error_path):
                if name.endswith(".html"):
                    with open(os.path.join(error_path, name), "rb") as fh:
                        self.pages[name] = fh.read()

    @staticmethod
    def reason(status: int) -> bytes:
        return REASONS.get(status, "Error").encode()

    async def render(self, status: int, url: bytes, *, close: bool) -> bytes:
        """The whole response; the status is always the original one, whatever the error target answers."""
        if self.error_target:
            target = f"{self.error_target}{status}?url={quote(url.decode('latin-1'), safe='')}"
            try:
                got = await fetch(target, seconds=5.0, max_bytes=1024 * 1024)
            except (OSError, TimeoutError, ValueError) as exc:
                log.warning("error target %s failed: %s", self.error_target, exc)
                return simple_response(status, self.reason(status), close=close)
            extra = []
            if "content-encoding" in got.headers:
                extra.append((b"Content-Encoding", got.headers["content-encoding"].encode("latin-1")))
            ctype = got.headers.get("content-type", "text/plain").encode("latin-1")
            return simple_response(status, got.body, ctype, close=close, extra=extra)
        for name in (f"{status}.html", "error.html"):
            if name in self.pages:
                return simple_response(status, self.pages[name], b"text/html", close=close)
        reason = self.reason(status).decode()
        body = f"<!DOCTYPE html><html><head><title>{status} {html.escape(reason)}</title></head>"
        body += f"<body><h1>{status}: {html.escape(reason)}</h1></body></html>"
        return simple_response(status, body.encode(), b"text/html", close=close)
