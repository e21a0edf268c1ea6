"""A tiny stand-in for a notebook server, run by the test spawner's ``process`` mode.

``python -m hubkit.builtin.tiny_server`` reads ``JUPYTERHUB_SERVICE_URL`` (like jupyterhub-singleuser) and
answers ``<prefix>api`` with 200. ``HUBKIT_TEST_BEHAVIOUR``: ``crash`` exits at once with code 3,
``hang-http`` never listens.
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    prefix = "/"

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


def main() -> int:
    behaviour = os.environ.get("HUBKIT_TEST_BEHAVIOUR", "ok")
    print(f"tiny server starting ({behaviour})", flush=True)
    if behaviour == "crash":
        print("crashing on purpose", flush=True)
        return 3
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    if behaviour == "hang-http":
        while True:
            time.sleep(3600)
    Handler.prefix = url.path or "/"
    server = ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 0), Handler)
    print(f"listening on {url.hostname}:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
