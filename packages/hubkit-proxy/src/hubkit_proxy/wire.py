"""HTTP/1.1 message heads: one request/response exchange and the bytes sent on each side.

Heads are rebuilt rather than copied so hop-by-hop headers never cross the proxy and body framing is decided
per side (a chunked upload may reach the target chunked while a close-delimited response is re-chunked).
"""

from __future__ import annotations

from typing import Any

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
# only this proxy sets it (on requests to the hub's route, see Settings.hub_mark): never passed on from a client
MARK_HEADER = b"X-Hubkit-Forwarded"
NOT_FORWARDED = HOP_BY_HOP | {MARK_HEADER.lower()}
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    403: "Forbidden",
    405: "Method Not Allowed",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"PUT"})
SAFE = frozenset({b"GET", b"HEAD", b"OPTIONS"})  # may be repeated on another target after being sent


class Exchange:
    """One request and its response on a client connection."""

    __slots__ = (
        "body_done",
        "client_close",
        "content_length",
        "discard",
        "finished",
        "headers",
        "host",
        "is_head",
        "keep_alive",
        "method",
        "pending",
        "pending_size",
        "req_chunked",
        "resp_chunked",
        "response_started",
        "retried",
        "route",
        "sent_at",
        "status",
        "upgrade",
        "upstream",
        "url",
        "version",
    )

    def __init__(
        self,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        version: str,
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.is_head = method == b"HEAD"
        self.host: str | None = None
        self.req_chunked = False
        self.content_length: int | None = None
        for name, value in headers:
            n = name.lower()
            if n == b"host":
                self.host = value.decode("latin-1")
            elif n == b"transfer-encoding" and b"chunked" in value.lower():
                self.req_chunked = True
            elif n == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None
        self.route: Any = None
        self.upstream: Any = None
        self.pending: list[bytes] = []  # body received before the upstream connection was ready
        self.pending_size = 0
        self.body_done = False
        self.discard = False  # answered locally (404/503): drop the rest of the body
        self.response_started = False
        self.resp_chunked = False
        self.client_close = False
        self.retried = False
        self.finished = False
        self.status = 0
        self.sent_at = 0.0

    @property
    def has_body(self) -> bool:
        return self.req_chunked or bool(self.content_length)

    @property
    def path(self) -> str:
        raw = self.url.split(b"?", 1)[0]
        if raw.startswith(b"http://") or raw.startswith(b"https://"):  # absolute-form request target
            slash = raw.find(b"/", raw.find(b"//") + 2)
            raw = raw[slash:] if slash >= 0 else b"/"
        return raw.decode("latin-1") or "/"


def _append(existing: bytes | None, value: bytes) -> bytes:
    return existing + b"," + value if existing else value


def request_head(
    ex: Exchange,
    *,
    client_ip: str,
    proto: str,
    local_port: int,
    x_forward: bool,
    prepend: bytes,
    strip_prefix: str | None,
    custom: list[tuple[bytes, bytes]],
) -> bytes:
    """The head sent to the target: full original path (CHP ``includePrefix``) behind the target's own path."""
    url = ex.url
    if url[:1] != b"/":
        url = ex.path.encode("latin-1") + (b"?" + url.split(b"?", 1)[1] if b"?" in url else b"")
    if strip_prefix and strip_prefix != "/":
        p = strip_prefix.encode("latin-1")
        if url.startswith(p):
            url = url[len(p) :] or b"/"
            if url[:1] == b"?":
                url = b"/" + url
    if prepend:
        url = prepend + url
    out = [ex.method, b" ", url, b" HTTP/1.1\r\n"]
    xff = xfp = xfproto = None
    has_xfh = False
    for name, value in ex.headers:
        n = name.lower()
        if n in NOT_FORWARDED:
            continue
        if x_forward:
            if n == b"x-forwarded-for":
                xff = value
                continue
            if n == b"x-forwarded-port":
                xfp = value
                continue
            if n == b"x-forwarded-proto":
                xfproto = value
                continue
            if n == b"x-forwarded-host":
                has_xfh = True
        out += (name, b": ", value, b"\r\n")
    if x_forward:
        port = str(local_port).encode()
        if ex.host and ":" in ex.host:
            port = ex.host.rsplit(":", 1)[1].encode("latin-1")
        scheme = proto.encode()
        if ex.upgrade:
            scheme = b"wss" if proto == "https" else b"ws"
        out += (b"X-Forwarded-For: ", _append(xff, client_ip.encode()), b"\r\n")
        out += (b"X-Forwarded-Port: ", _append(xfp, port), b"\r\n")
        out += (b"X-Forwarded-Proto: ", _append(xfproto, scheme), b"\r\n")
        if not has_xfh and not ex.upgrade and ex.host:
            out += (b"X-Forwarded-Host: ", ex.host.encode("latin-1"), b"\r\n")
    for name, value in custom:
        out += (name, b": ", value, b"\r\n")
    if ex.upgrade:
        out.append(b"Connection: Upgrade\r\n")
        for name, value in ex.headers:
            if name.lower() == b"upgrade":
                out += (b"Upgrade: ", value, b"\r\n")
    elif ex.req_chunked:
        out.append(b"Transfer-Encoding: chunked\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def response_head(
    ex: Exchange, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], *, keep_alive: bool
) -> bytes:
    """The head sent to the client; sets ``ex.resp_chunked``/``ex.client_close`` for the body that follows."""
    out = [b"HTTP/1.1 ", str(status).encode(), b" ", reason or b"-", b"\r\n"]
    has_length = False
    chunked_in = False
    for name, value in headers:
        n = name.lower()
        if n in HOP_BY_HOP:
            if n == b"transfer-encoding" and b"chunked" in value.lower():
                chunked_in = True
            continue
        if n == b"content-length":
            has_length = True
        out += (name, b": ", value, b"\r\n")
    no_body = ex.is_head or status in (204, 304) or status < 200
    if not no_body and (chunked_in or not has_length):
        if ex.version == "1.1":
            out.append(b"Transfer-Encoding: chunked\r\n")
            ex.resp_chunked = True
        else:
            ex.client_close = True
    if not keep_alive or ex.client_close:
        out.append(b"Connection: close\r\n")
    elif ex.version == "1.0":
        out.append(b"Connection: keep-alive\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def simple_response(
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    *,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    reason = REASONS.get(status, "Error").encode()
    out = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    if body:
        out.append(b"Content-Type: " + content_type + b"\r\n")
    for name, value in extra or ():
        out.append(name + b": " + value + b"\r\n")
    if status not in (204, 304):
        out.append(b"Content-Length: %d\r\n" % len(body))
    if close:
        out.append(b"Connection: close\r\n")
    out.append(b"\r\n")
    return b"".join(out) + body
