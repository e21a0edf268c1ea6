"""A small, real HTTP hub for package tests: identity, OAuth authorize/token (with PKCE), activity.

It implements only what a single-user server calls (identity, OAuth authorize and token, activity), and
records every request so tests can assert on what the server actually sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class FakeHub:
    server_token: str = field(default_factory=lambda: secrets.token_hex(16))
    client_id: str = "jupyterhub-user-alice"
    redirect_uri: str = "/user/alice/oauth_callback"
    # token -> identity model
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    browser_user: str = "alice"  # who is "logged in" at the hub's authorize step
    server_origin: str = ""  # where the authorize step redirects (the server's origin)
    activity: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (user, challenge)
    port: int = 0
    failing: bool = False  # identity lookups answer 503, as a hub in trouble (or restarting) does

    def add_token(self, name: str, scopes: list[str], kind: str = "user") -> str:
        tok = secrets.token_hex(16)
        self.tokens[tok] = {"kind": kind, "name": name, "scopes": scopes, "admin": False, "groups": []}
        return tok

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        hub = self
        self.tokens.setdefault(
            self.server_token,
            {
                "kind": "user",
                "name": "alice",
                "scopes": ["access:servers!server=alice/", "users:activity!user=alice"],
            },
        )

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return None

            def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _token(self) -> str:
                auth = self.headers.get("Authorization", "")
                return auth.split(None, 1)[1] if " " in auth else ""

            def do_GET(self) -> None:
                u = urlsplit(self.path)
                hub.requests.append(("GET", u.path, dict(self.headers)))
                if u.path in ("/hub/api", "/hub/api/"):
                    return self._send(200, {"version": "6.1.1"})
                if u.path == "/hub/api/user" and hub.failing:
                    return self._send(503, {"status": 503})
                if u.path == "/hub/api/user":
                    model = hub.tokens.get(self._token())
                    return self._send(200, model) if model else self._send(403, {"status": 403})
                if u.path == "/hub/api/oauth2/authorize":
                    q = {k: v[0] for k, v in parse_qs(u.query).items()}
                    if q.get("client_id") != hub.client_id or q.get("redirect_uri") != hub.redirect_uri:
                        return self._send(400, {"error": "bad client or redirect"})
                    code = secrets.token_urlsafe(20)
                    hub.codes[code] = (hub.browser_user, q.get("code_challenge", ""))
                    loc = f"{hub.server_origin}{hub.redirect_uri}?" + urlencode(
                        {"code": code, "state": q["state"]}
                    )
                    return self._send(302, None, {"Location": loc})
                return self._send(404, {"status": 404})

            def do_POST(self) -> None:
                u = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                hub.requests.append(("POST", u.path, dict(self.headers)))
                if u.path == "/hub/api/oauth2/token":
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    hub.token_requests.append(form)
                    if (
                        form.get("client_secret") != hub.server_token
                        or form.get("client_id") != hub.client_id
                    ):
                        return self._send(401, {"error": "invalid_client"})
                    entry = hub.codes.pop(form.get("code", ""), None)
                    if entry is None:
                        return self._send(400, {"error": "invalid_grant"})
                    user, challenge = entry
                    digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                    if challenge and base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                        return self._send(400, {"error": "invalid_grant"})
                    tok = hub.add_token(
                        user, [f"access:servers!server={user}/", f"read:users:name!user={user}"]
                    )
                    return self._send(200, {"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
                if u.path.startswith("/hub/api/users/") and u.path.endswith("/activity"):
                    if self._token() != hub.server_token:
                        return self._send(403, {"status": 403})
                    hub.activity.append(json.loads(raw))
                    return self._send(200)
                return self._send(404, {"status": 404})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
