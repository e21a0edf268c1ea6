"""A TCP relay on 127.0.0.1 in front of the API server that a test can cut: a network partition between the
hub and the cluster, with the real API server and the real client on either side. While cut, open
connections are dropped and new ones refused (the port is closed), as when the API server is unreachable."""

from __future__ import annotations

import contextlib
import socket
import threading


class NetGate:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = 0
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.closed = False
        self.sock: socket.socket | None = None
        self.flowing = threading.Event()  # cleared by freeze(): answers from the API server wait in the gate
        self.flowing.set()
        self._listen()

    def _listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self.port = int(sock.getsockname()[1])
        self.sock = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True, name="netgate").start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every connection through the gate and refuse new ones until :meth:`restore`."""
        if self.sock is not None:
            with contextlib.suppress(OSError):  # wakes the accepting thread; close() alone would not
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None
        with self.lock:
            for c in list(self.conns):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self.conns.clear()

    def freeze(self) -> None:
        """Hold every answer from the API server in the gate (requests still go through): the server does
        what it was asked, the client does not learn of it."""
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def restore(self) -> None:
        if self.sock is None:
            self._listen()

    def close(self) -> None:
        self.closed = True
        self.cut()

    def _accept(self, sock: socket.socket) -> None:
        while not self.closed:
            try:
                client, _ = sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.conns |= {client, upstream}
            for a, b, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, answers), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                while answers and not self.flowing.wait(0.2):
                    if self.closed:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self.lock:
                self.conns.discard(src)
                self.conns.discard(dst)
