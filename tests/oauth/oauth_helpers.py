"""Helpers for the OAuth integration tests: the real OP process, its sign-in form driver, authenticator builders."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
from hubkit.interfaces import LoginCompletion
from hubkit.plugins.registry import HubInfo
from hubkit.testing.processes import terminate
from hubkit_oauth import OIDCAuthenticator, OIDCConfig
from joserfc.jwk import RSAKey

REPO = Path(__file__).resolve().parents[2]
OP_SCRIPT = Path(__file__).parent / "oidc_op" / "provider.mjs"
OP_MODULE = REPO / ".cache" / "npm-oidc" / "node_modules" / "oidc-provider" / "lib" / "index.js"

CLIENT_ID = "hubkit"
CLIENT_SECRET = "hubkit-test-secret-0123456789abcdef"
OTHER_CLIENT_ID = "other-app"

ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {"preferred_username": "alice", "name": "Alice", "email": "alice@example.org",
              "email_verified": True, "groups": ["staff", "hub-admins"]},
    "bob": {"preferred_username": "bob", "name": "Bob", "email": "bob@example.org",
            "email_verified": True, "groups": ["students"]},
    "mallory": {"preferred_username": "mallory", "name": "Mallory", "email": "mallory@elsewhere.test",
                "email_verified": True, "groups": ["visitors"]},
}


def refusing_port() -> socket.socket:
    """A bound socket that does not listen: connections to its port are refused, and no one else can listen
    there while it is held (a provider that is down)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def new_key(kid: str) -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})
    return dict(key.as_dict(private=True))


@dataclass
class RealOP:
    """One oidc-provider process on port 0 (it reports the port it got). ``restart(keys)`` relaunches it on the
    same port (same issuer) with new signing keys, which is how a provider rotates keys."""

    workdir: Path
    redirect_uris: list[str]
    post_logout_uris: list[str]
    access_ttl: int = 3
    id_token_ttl: int = 3
    keys: list[dict[str, Any]] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    port: int = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        client = {"grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                  "redirect_uris": self.redirect_uris, "post_logout_redirect_uris": self.post_logout_uris,
                  "token_endpoint_auth_method": "client_secret_basic"}
        config = {
            "port": self.port, "module": str(OP_MODULE), "keys": self.keys, "accounts": ACCOUNTS,
            "ttl": {"AccessToken": self.access_ttl, "IdToken": self.id_token_ttl},
            "clients": [{**client, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                        {**client, "client_id": OTHER_CLIENT_ID, "client_secret": CLIENT_SECRET + "-other"}],
        }
        path = self.workdir / "op-config.json"
        path.write_text(json.dumps(config))
        log_path = self.workdir / "op.log"
        deadline = time.monotonic() + 30
        while True:
            seen = log_path.stat().st_size if log_path.exists() else 0
            with log_path.open("a") as log:
                self.proc = subprocess.Popen(["node", str(OP_SCRIPT), str(path)], stdout=subprocess.PIPE,
                                             stderr=log, text=True, env={**os.environ, "NODE_ENV": "test"})
            assert self.proc.stdout is not None
            while time.monotonic() < deadline:
                line = self.proc.stdout.readline()
                if line.startswith("READY"):
                    self.port = int(line.split()[1].rsplit(":", 1)[1])
                    return
                if not line and self.proc.poll() is not None:
                    break
            self.stop()
            # a restart must get its port (the issuer) back; another program's connection may hold it a moment
            with log_path.open(errors="replace") as fh:
                fh.seek(seen)
                taken = "EADDRINUSE" in fh.read()
            if not taken or time.monotonic() > deadline:
                raise RuntimeError(f"oidc-provider did not start; see {log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, grace=10)
        self.proc = None

    def restart(self, keys: list[dict[str, Any]]) -> None:
        self.stop()
        self.keys = keys
        self.start()


async def browse(browser: httpx.AsyncClient, url: str, *, login: str, until: str | None = None,
                 max_hops: int = 15) -> httpx.Response:
    """Act like a person in a browser from ``url``: follow redirects, fill the OP's login form with ``login``,
    confirm its logout form. Stops at the first page without an OP form, or at a redirect to ``until``."""
    response = await browser.get(url)
    for _ in range(max_hops):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if until is not None and location.startswith(until):
                return response
            response = await browser.get(location)
            continue
        tag = re.search(r'<form[^>]*method="post"[^>]*>', response.text)
        action = re.search(r'action="([^"]+)"', tag.group(0)) if tag else None
        at_op = response.url.path.startswith(("/interaction/", "/session/end"))  # the OP's own pages
        if not action or not at_op:
            return response
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
        if 'name="login"' in response.text:
            fields.update(login=login, password="any-password")
        if "op.logoutForm" in response.text:
            fields["logout"] = "yes"  # the "Yes, sign me out" button
        response = await browser.post(urljoin(str(response.url), action.group(1)), data=fields)
    raise AssertionError("too many redirects")


async def sign_in_at_op(browser: httpx.AsyncClient, url: str, *, login: str, until: str) -> dict[str, str]:
    """Sign in at the OP from ``url`` until it redirects to ``until`` (the hub's callback); return that
    redirect's query parameters."""
    response = await browse(browser, url, login=login, until=until)
    if not response.is_redirect:
        raise AssertionError(f"unexpected page {response.status_code} at {response.url}: {response.text[:300]}")
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


@dataclass
class RunningHub:
    """A started hub serving its web app on ``url``, logging in through the real OP ``op``."""

    hub: Any
    url: str
    op: RealOP


StartHub = Callable[..., Awaitable[RunningHub]]  # the start_hub fixture: await start_hub(op, **oidc_options)


def hub_info(hub_port: int) -> HubInfo:
    url = f"http://127.0.0.1:{hub_port}"
    return HubInfo(hub_id="oauth-test", data_dir="/tmp", hub_api_url=f"{url}/hub/api", hub_url=url,
                   public_url=url, public_port=hub_port)


def make_oidc(op: RealOP, hub_port: int, **overrides: Any) -> OIDCAuthenticator:
    options: dict[str, Any] = {
        "issuer": op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "profile", "email", "groups", "offline_access"],
        "allowed_groups": ["staff", "students"], "admin_groups": ["hub-admins"],
        "jwks_refetch_interval": 0,
    }
    options.update(overrides)
    return OIDCAuthenticator(OIDCConfig(**options), hub_info(hub_port))


async def wait_until_due(auth: Any, state: dict[str, Any]) -> None:
    """Sleep until the real access token in ``state`` is due for refresh (inside the refresh margin)."""
    due_at = state["expires_at"] - auth.refresh_margin_for(state)
    await asyncio.sleep(max(0.0, due_at - time.time()) + 0.1)


async def full_login(auth: OIDCAuthenticator, browser: httpx.AsyncClient, *, login: str, redirect_uri: str,
                     next_url: str = "/hub/home") -> tuple[LoginCompletion, dict[str, str], str]:
    """start_login -> the OP's form -> complete_login; returns the completion, callback params and state."""
    start = await auth.start_login(next_url, redirect_uri)
    params = await sign_in_at_op(browser, start.url, login=login, until=redirect_uri)
    done = await auth.complete_login(params, start.state, redirect_uri)
    return done, params, start.state
