"""Requests that are huge or slow in ways the head cap (issue 12 item 7) does not see.

1. **Chunked trailers** on the hub's own port: ``runtime/headlimit.py`` stops counting once the head is
   complete, and uvicorn appends every trailer field of a chunked body to the request's header list, so one
   connection can make the hub hold hundreds of megabytes (200 MB of trailers took its RSS from 120 MB to 300 MB;
   hubkit-proxy answers the same request with 431 after 64 KiB).
2. **Idle and slow heads**: a connection to the hub's port that sends nothing is never closed, and a request head
   trickled one header line every two seconds is never cut off, on the hub's port *and on hubkit-proxy's public
   port* (whose keep-alive timer restarts on every byte). Slowloris: enough of them exhaust the processes' file
   descriptors. Node (CHP) closes a head that is not complete after ``headersTimeout`` (60 s).
3. **A client that goes away mid-body** turns into ``ERROR hubkit.web: unhandled error`` plus two tracebacks
   (``starlette.requests.ClientDisconnect``) in the hub log, for every API endpoint that reads a body; on
   ``POST /hub/api/groups/{g}/users`` the body is read before authentication, so anyone can fill the log.

Fault: 1 ``hubkit/runtime/headlimit.py`` (count trailer bytes too); 2 ``hubkit/runtime/serve.py`` (no
head/idle timeout for uvicorn) and ``hubkit_proxy/frontend.py`` (``check_timeouts``: no deadline for an incomplete
head; now ``--request-head-timeout``, 20 s by default); 3 ``hubkit/api/base.py`` (``endpoint`` does not map
``ClientDisconnect``; ``read_json`` before ``authed`` in ``api/groups.py`` ``change_members``/``put_properties``).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from hardhub import HardHub

pytestmark = [pytest.mark.timeout(240)]

HEAD_DEADLINE = 60.0  # seconds a request head may take, as Node's headersTimeout (CHP)


def test_chunked_trailers_count_against_the_head_cap_on_the_hubs_port(sqlite_hub: HardHub) -> None:
    total = 32 * 1024 * 1024  # 500 times the hub's 64 KiB head cap
    line = b"X-Trailer: " + b"t" * 8000 + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", sqlite_hub.hub_port), timeout=10) as s:
        s.sendall(
            b"POST /hub/api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
        )
        s.settimeout(5)
        deadline = time.monotonic() + 60
        try:
            while sent < total and time.monotonic() < deadline:
                s.sendall(line * 32)
                sent += len(line) * 32
        except OSError:  # reset, broken pipe or a peer that stopped reading: refused
            pass
    assert sent < total, f"the hub read {sent / 2**20:.0f} MiB of trailer fields on one connection"
    # still serving
    with sqlite_hub.client() as c:
        assert c.get("/hub/api/").status_code == 200


def _lifetime(port: int, trickle: bool, limit: float) -> float | None:
    """Seconds until the server closed the connection, or None if it was still open after ``limit``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(0.5)
        t0 = time.monotonic()
        if trickle:
            s.sendall(b"GET /hub/api/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        next_line = t0 + 2
        while time.monotonic() - t0 < limit:
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - t0
            except TimeoutError:
                pass
            except OSError:
                return time.monotonic() - t0
            if trickle and time.monotonic() >= next_line:
                next_line += 2
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    return time.monotonic() - t0
    return None


def test_idle_and_slow_request_heads_are_cut_off(sqlite_hub: HardHub) -> None:
    cases = {
        "hub port, nothing sent": (sqlite_hub.hub_port, False, 30.0),
        "hub port, head trickled": (sqlite_hub.hub_port, True, HEAD_DEADLINE + 15),
        "proxy port, nothing sent": (sqlite_hub.public, False, 30.0),
        "proxy port, head trickled": (sqlite_hub.public, True, HEAD_DEADLINE + 15),
    }
    results: dict[str, float | None] = {}

    def run(name: str) -> None:
        results[name] = _lifetime(*cases[name])

    threads = [threading.Thread(target=run, args=(n,)) for n in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HEAD_DEADLINE + 60)
    still_open = [name for name in cases if results.get(name) is None]
    assert not still_open, f"connections never closed: {still_open} (closed: {results})"


def test_a_client_leaving_mid_body_leaves_no_traceback(sqlite_hub: HardHub) -> None:
    boss = sqlite_hub.token("boss")
    mark = len(sqlite_hub.log_text())
    requests = [
        # unauthenticated: this endpoint reads its body before it checks credentials
        b"POST /hub/api/groups/pgnosuch/users HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"POST /hub/api/users/boss/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token "
        + boss.encode()
        + b"\r\n",
    ]
    for port in (sqlite_hub.public, sqlite_hub.hub_port):
        for head in requests:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(head + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
                time.sleep(0.3)
    time.sleep(1.0)
    new = sqlite_hub.log_text()[mark:]
    assert "Traceback" not in new and "ClientDisconnect" not in new, new[:3000]
    with sqlite_hub.client() as c:
        assert c.get("/hub/api/").status_code == 200
