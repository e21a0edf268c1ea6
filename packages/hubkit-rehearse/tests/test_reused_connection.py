"""A kept-alive connection the server resets just as the next request goes out: sent again, once, and counted
(as browsers do), whether the close was clean or a reset."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from hubkit_rehearse.browser import Browser, Origin

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def _read_head(conn: socket.socket) -> bytes:
    """A whole request head, or b"" at the end of the connection (a body left unread does not count as one)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    return data


@pytest.fixture
def resetting_server() -> Iterator[tuple[int, list[str]]]:
    """Answers the first request on a connection, then resets that connection when the second one arrives
    (SO_LINGER 0: the kernel sends RST); every new connection is answered the same way. Bodies are not read: a
    body that arrives apart from its head is then what the next read sees, and it is no request."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            if not _read_head(conn):
                return
            seen.append("answered")
            conn.sendall(OK)
            if not _read_head(conn):
                return
            seen.append("reset")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], seen
    finally:
        stop.set()
        t.join(5)
        srv.close()


async def test_a_reset_kept_alive_connection_is_retried_once_and_counted(
    resetting_server: tuple[int, list[str]],
) -> None:
    port, seen = resetting_server
    browser = Browser(Origin(f"http://127.0.0.1:{port}/"))
    try:
        first = await browser.request("GET", f"http://127.0.0.1:{port}/hub/login")
        second = await browser.request("POST", f"http://127.0.0.1:{port}/hub/login", data={"a": "b"})
    finally:
        await browser.client.aclose()
    assert first.status_code == second.status_code == 200
    assert seen == ["answered", "reset", "answered"]  # the POST reached a reset socket, then a fresh one
    assert browser.reconnects == 1
