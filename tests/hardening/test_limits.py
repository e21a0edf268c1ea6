"""Issue 12 item 7: the hub's own port refuses an oversized request head with 431 (as hubkit-proxy does) instead
of reading megabytes, and an oversized chunked login body is a 413, as the docs promise."""

from __future__ import annotations

import pytest
from hardhub import HardHub, raw_request

pytestmark = [pytest.mark.timeout(180)]


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize("size", [70_000, 16 * 1024 * 1024])
def test_oversized_header_is_431_on_the_hubs_own_port(hub: HardHub, size: int) -> None:
    head = b"GET /hub/api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    assert _status(raw_request(hub.hub_port, head)) == 431
    many = (
        b"GET /hub/api/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(1000))
        + b"\r\n"
    )
    assert _status(raw_request(hub.hub_port, many)) == 431
    # the hub still answers, and a normal request with a body larger than the cap is not mistaken for a head
    ok = raw_request(hub.hub_port, b"GET /hub/api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert _status(ok) == 200
    body = b'{"usernames": ["' + b"x" * 200_000 + b'"]}'
    post = (
        b"POST /hub/api/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    assert _status(raw_request(hub.hub_port, post)) == 403  # read whole, then refused for lack of a token


@pytest.mark.parametrize("path", [b"/hub/login", b"/hub/api/oauth2/token"])
def test_oversized_chunked_form_body_is_413(hub: HardHub, path: bytes) -> None:
    chunk = b"a" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(40))  # 2.5 MiB > 1 MiB
    req = (
        b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"9\r\nusername=\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    for port in (hub.hub_port, hub.public):  # on the hub's port and through the proxy
        resp = raw_request(port, req)
        assert _status(resp) == 413, resp[:300]
    hub.api("GET", "/")  # still serving
