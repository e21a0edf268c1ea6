"""A tiny stand-in for a notebook server, run by the stand-in spawner's ``process`` mode (and by other test
harnesses as a server process).

``python -m hubkit.builtin.tiny_server`` reads ``JUPYTERHUB_SERVICE_URL`` (like jupyterhub-singleuser) and answers
``<prefix>api`` with 200 on its address. With ``--port-file=PATH`` it listens on 127.0.0.1 on a port the kernel
picks (port 0, so it never races other programs for one) and writes that port to ``PATH``. ``--hub`` and
``--instance`` are not read: they label the process in ``/proc/<pid>/cmdline`` so a hub can find its servers again
even if it died before it saved their pids. ``HUBKIT_TEST_BEHAVIOUR``: ``crash`` exits at once with code 3,
``hang-http`` listens but never answers.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    def __init__(self, *args: Any, prefix: str, **kw: Any) -> None:
        self.prefix = prefix
        super().__init__(*args, **kw)

    def do_GET(self) -> None:
        body = json.dumps(
            {"version": "tiny", "path": self.path, "user": os.environ.get("JUPYTERHUB_USER")}
        ).encode()
        code = 200 if self.path.startswith(self.prefix) else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def write_port(path: str, port: int) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(str(port))
    tmp.replace(path)  # atomic: a reader never sees a half-written number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", default="")
    parser.add_argument("--instance", default="")
    parser.add_argument("--port-file", default="")
    # other arguments are a real server's (``--allow-root`` from the local spawner run as root): ignored
    args, _others = parser.parse_known_args(argv)
    behaviour = os.environ.get("HUBKIT_TEST_BEHAVIOUR", "ok")
    print(f"tiny server starting ({behaviour})", flush=True)
    if behaviour == "crash":
        print("crashing on purpose", flush=True)
        return 3
    url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
    host, port = ("127.0.0.1", 0) if args.port_file else (url.hostname or "127.0.0.1", url.port or 0)
    if behaviour == "hang-http":
        sock = socket.create_server((host, port))  # connections queue up and are never answered
        if args.port_file:
            write_port(args.port_file, sock.getsockname()[1])
        while True:
            time.sleep(3600)
    prefix = url.path or os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    server = ThreadingHTTPServer((host, port), functools.partial(Handler, prefix=prefix))
    port = int(server.server_address[1])
    if args.port_file:
        write_port(args.port_file, port)
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
