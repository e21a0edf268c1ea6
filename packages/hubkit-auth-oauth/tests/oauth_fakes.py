"""Local HTTP servers that answer like GitHub, GitLab, Google, Entra ID and Auth0 do (documented response
shapes), so each preset's claim and API mapping is exercised over real HTTP on 127.0.0.1.

The OIDC side checks what a real provider checks: client authentication, redirect_uri, and the PKCE S256
verifier against the challenge sent to /authorize. The tests decide what the provider says (claims, API
bodies), never what the authenticator concludes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import uvicorn
from hubkit.interfaces import LoginCompletion
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "fake-client"
CLIENT_SECRET = "fake-secret"
REDIRECT_URI = "http://127.0.0.1:8000/hub/oauth_callback"


@dataclass
class FakeProvider:
    """What the provider will say. Tests set these before a login."""

    base: str = ""
    issuer_path: str = ""  # e.g. "/tenant-a/v2.0"
    discovered_issuer: str | None = None  # default: base + issuer_path
    id_claims: dict[str, Any] = field(default_factory=dict)
    userinfo: dict[str, Any] = field(default_factory=dict)
    github: dict[str, Any] = field(default_factory=dict)  # path -> JSON body, or int status
    expires_in: int | None = 3600
    end_session: bool = True
    key: Any = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "fake-1"}))
    id_token_override: str | None = None
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)

    @property
    def issuer(self) -> str:
        return self.base + self.issuer_path

    # ----- OIDC ------------------------------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        root = self.issuer
        doc = {
            "issuer": self.discovered_issuer or root,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "jwks_uri": f"{self.base}/jwks",
            "userinfo_endpoint": f"{self.base}/userinfo",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        if self.end_session:
            doc["end_session_endpoint"] = f"{self.base}/logout"
        return JSONResponse(doc)

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False, use="sig", alg="RS256")]})

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append(("authorize", params))
        code = secrets.token_urlsafe(16)
        self.codes[code] = params
        query = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            who = base64.b64decode(header[6:]).decode()
            return who == f"{CLIENT_ID}:{CLIENT_SECRET}"
        return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.requests.append(("token", form))
        if not self._client_ok(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            self.refresh_tokens.discard(form["refresh_token"])  # rotating refresh tokens: each works once
            await asyncio.sleep(0.05)
            return JSONResponse(self._tokens(nonce=None))
        auth = self.codes.pop(form.get("code", ""), None)
        if auth is None or auth.get("redirect_uri") != form.get("redirect_uri"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if auth.get("code_challenge_method") != "S256" or challenge != auth.get("code_challenge"):
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE failed"}, status_code=400)
        return JSONResponse(self._tokens(nonce=auth.get("nonce")))

    def _tokens(self, nonce: str | None) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(16)
        self.refresh_tokens.add(refresh)
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, **self.id_claims}
        if nonce:
            claims["nonce"] = nonce
        id_token = self.id_token_override or jwt.encode({"alg": "RS256", "kid": "fake-1"}, claims, self.key)
        body: dict[str, Any] = {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                "refresh_token": refresh, "id_token": id_token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return body

    async def userinfo_endpoint(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(self.userinfo)

    # ----- GitHub ----------------------------------------------------------------------------------------
    async def github_token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.requests.append(("github_token", form))
        if not self._client_ok(request, form):
            return JSONResponse({"error": "incorrect_client_credentials"})
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return JSONResponse({"error": "bad_refresh_token"})
        elif self.codes.pop(form.get("code", ""), None) is None:
            # GitHub answers 200 with an error body for a used or unknown code
            return JSONResponse({"error": "bad_verification_code",
                                 "error_description": "The code passed is incorrect or expired."})
        body: dict[str, Any] = {"access_token": "gho_" + secrets.token_hex(16), "scope": "read:org,user:email",
                                "token_type": "bearer"}
        if self.expires_in is not None:  # GitHub App user tokens expire and come with a refresh token
            refresh = "ghr_" + secrets.token_hex(16)
            self.refresh_tokens.add(refresh)
            body.update(expires_in=self.expires_in, refresh_token=refresh, refresh_token_expires_in=15811200)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return Response(urlencode(body), media_type="application/x-www-form-urlencoded")

    async def github_api(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Bearer gh"):
            return JSONResponse({"message": "Requires authentication"}, status_code=401)
        path = "/" + request.path_params["path"]
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", "30"))
        self.requests.append(("github_api", {"path": path, "page": str(page)}))
        body = self.github.get(path)
        if body is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        if isinstance(body, int):
            return JSONResponse({"message": "Resource not accessible by integration"}, status_code=body)
        if isinstance(body, list):
            body = body[(page - 1) * per_page: page * per_page]
        return JSONResponse(body)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/{prefix:path}/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks),
            Route("/authorize", self.authorize),
            Route("/login/oauth/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"]),
            Route("/login/oauth/access_token", self.github_token, methods=["POST"]),
            Route("/userinfo", self.userinfo_endpoint),
            Route("/api/{path:path}", self.github_api),
        ])


class ServerThread:
    """uvicorn in a thread with its own loop, so sync and async tests can both use it."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=sock.getsockname()[1],
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("fake provider did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def login(auth: Any, next_url: str = "/hub/home") -> LoginCompletion:
    """start_login -> the fake provider's /authorize (auto-approves) -> complete_login."""
    start = await auth.start_login(next_url, REDIRECT_URI)
    async with httpx.AsyncClient() as client:
        answer = await client.get(start.url)
    assert answer.status_code == 302, answer.text
    params = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
    done: LoginCompletion = await auth.complete_login(params, start.state, REDIRECT_URI)
    return done
