"""One simulated person's HTTP state, and the rule that keeps their credentials at home.

A :class:`Browser` has a cookie jar (the hub's login cookie, each server's OAuth cookie, ``_xsrf``), maybe an
API token, and talks to exactly one origin: the hub URL the operator gave. Every request passes an httpx
request hook that refuses any other origin *before* anything is sent, and redirects are followed by hand so
a ``Location`` pointing elsewhere is never fetched. So neither the password, the token nor a cookie can
reach another host or port, whatever the hub (or something pretending to be it) answers.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urljoin, urlsplit
from urllib.request import Request

import httpx

USER_AGENT = "hubkit-rehearse/0.1 (a load rehearsal)"
MAX_REDIRECTS = 20


class OffOrigin(Exception):
    """A request or redirect to another origin than the hub's: refused, nothing sent."""


class HubHTTPError(Exception):
    """An answer the session did not expect; the status and a bit of the body say why."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        self.method, self.url, self.status = method, url, status
        self.body = body[:300]
        path = urlsplit(url).path
        super().__init__(f"{method} {path} -> HTTP {status}: {_message(body)}")


def _message(body: str) -> str:
    """The hub's error message from a JSON body ({"message": ...}), or the body's start."""
    try:
        data = json.loads(body)
    except ValueError:
        return " ".join(body.split())[:200]
    if isinstance(data, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(data.get(key), str):
                return str(data[key])[:200]
    return body[:200]


def closed_before_answer(exc: httpx.TransportError) -> bool:
    """The server closed a kept-alive connection as the request went out, before any byte of an answer: a
    clean close (``Server disconnected without sending a response``), or a reset, when the request's bytes
    reached a socket the server had just closed (the kernel answers them with RST: a ``ReadError`` or
    ``WriteError`` caused by ``ConnectionResetError``/``BrokenPipeError``).
    Browsers send such a request again on a new connection (any method: nothing was answered), and so do we;
    each time is counted, since a hub or proxy that does this often has a keep-alive bug worth knowing."""
    if isinstance(exc, httpx.RemoteProtocolError):
        return "without sending a response" in str(exc)
    cause: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> anyio -> the OSError
        if cause is None:
            return False
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class Origin:
    """scheme://host:port of the hub, plus its path prefix (a hub may live under /jhub/)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: the hub URL must be http:// or https:// with a host")
        if parts.username or parts.password:
            raise ValueError("the hub URL must not carry credentials")
        self.scheme = parts.scheme
        self.host = parts.hostname.lower()
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.text = f"{self.scheme}://{netloc}:{self.port}"
        path = parts.path or "/"
        self.prefix = path if path.endswith("/") else path + "/"
        self.base = self.text + self.prefix

    def key(self, url: str | httpx.URL) -> tuple[str, str, int]:
        u = httpx.URL(str(url))
        scheme = {"ws": "http", "wss": "https"}.get(u.scheme, u.scheme)
        port = u.port or (443 if scheme == "https" else 80)
        return scheme, (u.host or "").lower(), port

    def same(self, url: str | httpx.URL) -> bool:
        return self.key(url) == (self.scheme, self.host, self.port)

    def check(self, url: str | httpx.URL) -> None:
        if not self.same(url):
            u = httpx.URL(str(url))
            raise OffOrigin(
                f"refused to contact {u.scheme}://{u.netloc.decode()} (not the hub's origin {self.text})"
            )

    def hub(self, path: str) -> str:
        """A URL under the hub prefix: ``hub("hub/api/users")``."""
        return self.base + path.lstrip("/")

    def absolute(self, path_or_url: str) -> str:
        """A server URL from the hub (``/user/alice/``) made absolute on the hub's origin."""
        return urljoin(self.base, path_or_url)

    def ws(self, path_or_url: str) -> str:
        url = self.absolute(path_or_url)
        return ("wss" if self.scheme == "https" else "ws") + url[len(self.scheme) :]


def api_path(user: str, server_name: str = "") -> str:
    """``users/<name>/server`` or ``users/<name>/servers/<server>``, quoted as JupyterHub expects."""
    base = f"users/{quote(user, safe='')}"
    return f"{base}/servers/{quote(server_name, safe='')}" if server_name else f"{base}/server"


@functools.cache
def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """One TLS context for every simulated browser (building one per client costs tens of ms each)."""
    return ssl.create_default_context(cafile=ca_file)


class Browser:
    """Cookie jar + optional token, one origin. ``token`` mode sends ``Authorization: token`` (to the hub's
    origin only); cookie mode adds the hub's XSRF token to API calls as the hub's own pages do.
    Environment proxies are ignored (``trust_env=False``): a proxy would see the credentials."""

    def __init__(
        self, origin: Origin, *, token: str | None = None, timeout: float = 60.0, ca_file: str | None = None
    ) -> None:
        self.origin = origin
        self.token = token
        self.ca_file = ca_file
        self.hub_xsrf: str | None = None
        self.reconnects = 0  # requests sent again after a kept-alive connection closed without an answer
        self.client = httpx.AsyncClient(
            timeout=timeout,
            verify=tls_context(ca_file),
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=6, max_keepalive_connections=6),  # what a browser allows
            event_hooks={"request": [self._guard]},
        )

    async def _guard(self, request: httpx.Request) -> None:
        self.origin.check(request.url)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return headers

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self.origin.check(url)
        kw["headers"] = self._headers(kw.get("headers"))
        try:
            return await self.client.request(method, url, **kw)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            if not closed_before_answer(exc):
                raise
            self.reconnects += 1  # as a browser does: once, on a fresh connection
            return await self.client.request(method, url, **kw)

    async def follow(self, url: str, *, max_hops: int = MAX_REDIRECTS) -> tuple[httpx.Response, int]:
        """GET ``url`` and follow redirects like a browser, on the hub's origin only (OffOrigin otherwise)."""
        hops = 0
        r = await self.request("GET", url)
        while r.is_redirect:
            if hops >= max_hops:
                raise HubHTTPError("GET", str(r.url), r.status_code, f"more than {max_hops} redirects")
            target = urljoin(str(r.url), r.headers["location"])
            if not self.origin.same(target):
                raise OffOrigin(
                    f"{urlsplit(str(r.url)).path} redirected to another origin: {target} (not followed)"
                )
            hops += 1
            r = await self.request("GET", target)
        return r, hops

    def _api_headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if not self.token and self.hub_xsrf:
            headers["X-XSRFToken"] = self.hub_xsrf
        return headers

    async def api(self, method: str, path: str, *, json_body: Any = None) -> httpx.Response:
        headers = self._api_headers({"Accept": "application/json"})
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            headers["Origin"] = self.origin.text
        kw: dict[str, Any] = {"headers": headers}
        if json_body is not None:
            kw["json"] = json_body
        return await self.request(method, self.origin.hub("hub/api/" + path), **kw)

    async def events(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events from a progress URL, one dict per ``data:`` line."""
        url = self.origin.hub("hub/api/" + path)
        headers = self._headers(self._api_headers({"Accept": "text/event-stream"}))
        self.origin.check(url)
        request = self.client.build_request("GET", url, headers=headers)
        try:
            r = await self.client.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            if not closed_before_answer(exc):
                raise
            self.reconnects += 1
            r = await self.client.send(request, stream=True)
        try:
            if r.status_code != 200:
                body = (await r.aread()).decode(errors="replace")
                raise HubHTTPError("GET", url, r.status_code, body)
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    try:
                        event = json.loads(line[5:].strip())
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        yield event
        finally:
            await r.aclose()

    def cookie(self, name: str, path: str) -> str | None:
        """The value of cookie ``name`` whose path covers ``path`` (most specific first)."""
        best: tuple[int, str] | None = None
        for c in self.client.cookies.jar:
            covers = c.name == name and c.value is not None and path.startswith(c.path or "/")
            if covers and (best is None or len(c.path or "") > best[0]):
                best = (len(c.path or ""), str(c.value))
        return best[1] if best else None

    def cookie_header(self, url: str) -> str | None:
        """The Cookie header a browser would send to ``url`` (for the kernel websocket)."""
        http_url = self.origin.absolute(url)
        req = Request(http_url)
        self.client.cookies.jar.add_cookie_header(req)
        return req.get_header("Cookie")


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.xsrf_inputs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}})
        elif tag == "input" and a.get("name"):
            if a["name"] == "_xsrf" and a.get("value"):
                self.xsrf_inputs.append(a["value"])
            if self.forms:
                self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def login_form(html: str) -> tuple[str, dict[str, str]] | None:
    """(action, hidden fields) of the page's form with a ``username`` input, or None."""
    p = _Forms()
    p.feed(html)
    for form in p.forms:
        if "username" in form["fields"]:
            fields = {k: v for k, v in form["fields"].items() if k not in ("username", "password")}
            return str(form["action"]), fields
    return None


def page_xsrf(html: str) -> str | None:
    """The XSRF token a hub page embeds for its own scripts and forms: JupyterHub's ``xsrf_token: "..."``
    in the page data, or a hidden ``_xsrf`` input (hubkit's forms, JupyterHub's login form)."""
    import re

    m = re.search(r"""xsrf_token["']?\s*:\s*["']([^"']+)["']""", html)
    if m:
        return m.group(1)
    p = _Forms()
    p.feed(html)
    return p.xsrf_inputs[0] if p.xsrf_inputs else None
