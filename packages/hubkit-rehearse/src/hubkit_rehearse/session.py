"""One simulated person's visit, step by step, each step timed into the user's record:

login -> start (request answered) -> spawn (request to ready event) -> open (JupyterLab through the proxy,
following the hub->server OAuth redirects) -> kernel -> cells -> think -> stop.

A failed step ends the session; whatever it started is stopped later by the runner's cleanup, which uses the
same :class:`Session` (its cookies or token) to stop the server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import websockets.exceptions

from .admin import Admin
from .browser import Browser, HubHTTPError, OffOrigin, Origin, api_path, login_form, page_xsrf
from .kernel import Kernel, KernelError
from .plan import Plan
from .record import Step, UserRecord


class StepFailed(Exception):
    """A step failed; the reason is already in the user's record."""


class SpawnFailed(Exception):
    pass


class LoginRefused(Exception):
    pass


class UnexpectedPage(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def reset(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0


def _normalize(text: str, user: str) -> str:
    """Group alike failures: the user's own name and numbers (ports, ids, counts) are blanked."""
    text = text.replace(quote(user, safe=""), "{user}").replace(user, "{user}")
    text = re.sub(r"\d+", "N", text)
    return " ".join(text.split())[:120]


def classify(exc: BaseException, user: str) -> tuple[str, str]:
    """(reason to group by, one full example message)."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    reason: str
    if isinstance(exc, HubHTTPError):
        msg = str(exc).split(": ", 1)[1] if ": " in str(exc) else ""
        reason = f"HTTP {exc.status}" + (f" ({_normalize(msg, user)})" if msg else "")
        detail = str(exc)
    elif isinstance(exc, SpawnFailed):
        reason = "spawn failed: " + _normalize(str(exc), user)
    elif isinstance(exc, OffOrigin):
        reason = "request to another origin refused (credentials stay with the hub)"
    elif isinstance(exc, KernelError | LoginRefused | UnexpectedPage):
        reason = _normalize(str(exc), user)
    elif isinstance(exc, httpx.TimeoutException):
        reason = f"HTTP timeout ({type(exc).__name__})"
    elif isinstance(exc, httpx.ConnectError):
        reason = "connection failed"
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        reason = "connection dropped by the hub or proxy"
    elif isinstance(exc, websockets.exceptions.InvalidStatus):
        reason = f"kernel websocket refused: HTTP {exc.response.status_code}"
    elif isinstance(exc, websockets.exceptions.ConnectionClosed):
        reason = "kernel websocket closed"
    elif isinstance(exc, TimeoutError):
        reason = _normalize(str(exc), user) if str(exc) else "timeout"
    else:
        reason = type(exc).__name__
    return reason, detail[:500]


class Session:
    def __init__(
        self,
        *,
        plan: Plan,
        origin: Origin,
        clock: Clock,
        record: UserRecord,
        think: float,
        token: str | None = None,
        admin: Admin | None = None,
    ) -> None:
        self.plan = plan
        self.origin = origin
        self.clock = clock
        self.record = record
        self.think = think
        self.admin = admin
        self.browser = Browser(
            origin,
            token=token,
            timeout=plan.request_timeout,
            ca_file=str(plan.ca_file) if plan.ca_file else None,
        )
        self.server_url = (
            origin.prefix
            + f"user/{quote(record.name, safe='')}/"
            + (f"{quote(plan.server_name, safe='')}/" if plan.server_name else "")
        )
        self.server_requested = False  # a start request went out: cleanup must stop the server
        self.server_stopped = False

    @property
    def name(self) -> str:
        return self.record.name

    @asynccontextmanager
    async def step(self, phase: str, t0: float | None = None) -> AsyncIterator[Step]:
        st = Step(phase, self.clock.now() if t0 is None else t0)
        self.record.steps.append(st)
        try:
            yield st
        except asyncio.CancelledError:
            st.t1, st.ok, st.reason = self.clock.now(), False, "cancelled"
            raise
        except Exception as exc:
            st.t1, st.ok = self.clock.now(), False
            st.reason, st.detail = classify(exc, self.name)
            raise StepFailed(st.reason) from exc
        st.t1 = self.clock.now()

    async def run(self) -> None:
        rec = self.record
        try:
            await self.login()
            await self.start()
            if self.plan.open == "lab":
                await self.open_lab()
            elif self.plan.open == "api":
                await self.open_api()
            if self.plan.runs_kernel:
                await self.use_kernel()
            else:
                await self.dwell()
            if self.plan.stop:
                async with self.step("stop"):
                    await self.stop_server(self.plan.spawn_timeout)
            rec.outcome = "ok"
        except StepFailed:
            rec.outcome = "failed"
        except asyncio.CancelledError:
            rec.outcome = "cancelled"
            raise
        finally:
            rec.end = self.clock.now()
            rec.reconnects = self.browser.reconnects

    # -- login ---------------------------------------------------------------------------------------------

    async def login(self) -> None:
        async with self.step("login"):
            if self.plan.login == "form":
                await self._form_login()
            elif self.plan.login == "token":
                assert self.admin is not None
                expires = int(self.plan.max_duration + self.plan.cleanup_timeout + 600)
                self.browser.token = await self.admin.issue_token(self.name, expires)
            else:
                r = await self.browser.api("GET", "user")
                if r.status_code != 200:
                    raise HubHTTPError("GET", str(r.url), r.status_code, r.text)
                owner = r.json().get("name")
                if owner != self.name:
                    raise LoginRefused(f"the token in --user-file belongs to {owner!r}, not this user")

    async def _form_login(self) -> None:
        """As a person does: the login page, the form with its hidden ``_xsrf``, then the hub's home page,
        whose XSRF token the hub's own scripts send with API calls (Start, Stop)."""
        home = self.origin.prefix + "hub/home"
        page, _ = await self.browser.follow(self.origin.hub("hub/login") + "?next=" + quote(home, safe=""))
        if page.status_code != 200:
            raise HubHTTPError("GET", str(page.url), page.status_code, page.text)
        form = login_form(page.text)
        if form is None:
            raise LoginRefused(
                "no login form with a username field on the hub's login page (use --login token)"
            )
        action, hidden = form
        post_url = str(page.url.join(action)) if action else str(page.url)
        # the password goes to the hub's origin or nowhere (Browser.request refuses anything else)
        r = await self.browser.request(
            "POST",
            post_url,
            data={**hidden, "username": self.name, "password": self.plan.password},
            headers={"Origin": self.origin.text, "Referer": str(page.url)},
        )
        if r.status_code == 200 and login_form(r.text) is not None:
            raise LoginRefused("login refused (the hub showed the login form again)")
        if not r.is_redirect:
            raise HubHTTPError("POST", post_url, r.status_code, r.text)
        target = str(r.url.join(r.headers["location"]))
        if urlsplit(target).path.endswith("/login"):
            raise LoginRefused("login refused (redirected back to the login page)")
        page, _ = await self.browser.follow(target)
        if page.status_code != 200:
            raise HubHTTPError("GET", str(page.url), page.status_code, page.text)
        self.browser.hub_xsrf = page_xsrf(page.text) or self.browser.cookie(
            "_xsrf", self.origin.prefix + "hub/"
        )

    # -- start and spawn ------------------------------------------------------------------------------------

    async def start(self) -> None:
        path = api_path(self.name, self.plan.server_name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.spawn_timeout
        async with self.step("start") as started:
            requested = started.t0
            while True:
                self.server_requested = True
                r = await self.browser.api("POST", path, json_body=self.plan.user_options or None)
                if r.status_code in (201, 202):
                    break
                if r.status_code == 429:  # JupyterHub's concurrent_spawn_limit: come back later, as told
                    self.record.retries_429 += 1
                    wait = _retry_after(r)
                    self.record.wait_429 += wait
                    if loop.time() + wait > deadline:
                        raise TimeoutError(
                            f"start refused with 429 until the {self.plan.spawn_timeout:.0f} s spawn timeout"
                        )
                    await asyncio.sleep(wait)
                    continue
                if r.status_code == 400 and "already" in r.text.lower():
                    self.server_requested = False  # not ours to stop
                raise HubHTTPError("POST", str(r.url), r.status_code, r.text)
        async with self.step("spawn", t0=requested):
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wait_ready(path)
            except TimeoutError:
                raise TimeoutError(
                    f"no ready event within the {self.plan.spawn_timeout:.0f} s spawn timeout"
                ) from None

    async def _wait_ready(self, path: str) -> None:
        """Follow the progress event stream to ``ready`` (or ``failed``); if the stream ends early, look at
        the server model and reconnect."""
        positions = self.record.queue_positions
        while True:
            try:
                async for ev in self.browser.events(path + "/progress"):
                    pos = ev.get("queue_position")
                    if isinstance(pos, int) and (not positions or positions[-1] != pos):
                        positions.append(pos)
                    if ev.get("failed"):
                        raise SpawnFailed(str(ev.get("message", "spawn failed")))
                    if ev.get("ready"):
                        if isinstance(ev.get("url"), str) and ev["url"]:
                            self.server_url = str(ev["url"])
                        return
            except HubHTTPError as exc:
                if exc.status != 400:
                    raise
            model = await self.server_model(path)
            if model is not None and model.get("ready"):
                if isinstance(model.get("url"), str) and model["url"]:
                    self.server_url = str(model["url"])
                return
            if model is None or not model.get("pending"):
                raise SpawnFailed("the server is neither starting nor ready")
            await asyncio.sleep(0.5)

    async def server_model(self, path: str) -> dict[str, Any] | None:
        r = await self.browser.api("GET", f"users/{quote(self.name, safe='')}")
        if r.status_code != 200:
            raise HubHTTPError("GET", str(r.url), r.status_code, r.text)
        servers = r.json().get("servers") or {}
        model = servers.get(self.plan.server_name)
        return model if isinstance(model, dict) else None

    # -- the server through the proxy -----------------------------------------------------------------------

    async def open_lab(self) -> None:
        async with self.step("open"):
            r, hops = await self.browser.follow(self.origin.absolute(self.server_url + "lab"))
            self.record.redirects = hops
            if r.status_code != 200:
                raise HubHTTPError("GET", str(r.url), r.status_code, r.text)
            final = urlsplit(str(r.url)).path
            if not final.startswith(urlsplit(self.origin.absolute(self.server_url)).path):
                raise UnexpectedPage(f"opening the server ended at {final}, outside the server")
            if "jupyter-config-data" not in r.text:
                raise UnexpectedPage("the server's /lab page is not JupyterLab (no jupyter-config-data)")

    async def open_api(self) -> None:
        """The server's own ``api`` answering through the proxy (no redirect to the hub)."""
        async with self.step("open"):
            r = await self.browser.request("GET", self.origin.absolute(self.server_url + "api"))
            if r.status_code != 200:
                raise HubHTTPError("GET", str(r.url), r.status_code, r.text)
            try:
                ok = "version" in r.json()
            except ValueError:
                ok = False
            if not ok:
                raise UnexpectedPage("the server's api did not answer with a version")

    async def use_kernel(self) -> None:
        kernel = Kernel(self.browser, self.server_url, self.name, self.plan.request_timeout)
        try:
            async with self.step("kernel"):
                await kernel.start()
            async with self.step("cells"):
                for cell in self.plan.cells:
                    t = time.monotonic()
                    await kernel.execute(cell.code, cell.expect)
                    self.record.cells.append(time.monotonic() - t)
            await self.dwell()
        finally:
            await asyncio.shield(kernel.close())

    async def dwell(self) -> None:
        if self.think > 0:
            async with self.step("think"):
                await asyncio.sleep(self.think)

    # -- stop -----------------------------------------------------------------------------------------------

    async def stop_server(self, within: float) -> None:
        """DELETE the server and wait (at most ``within`` s) until the hub reports it stopped (202 means
        "still stopping")."""
        path = api_path(self.name, self.plan.server_name)
        async with asyncio.timeout(within):
            while True:
                r = await self.browser.api("DELETE", path)
                if r.status_code in (204, 404):
                    break
                if r.status_code == 202:
                    await self._wait_stopped(path)
                    break
                if r.status_code == 400 and "pending" in r.text.lower():  # JupyterHub: a spawn still pending
                    await asyncio.sleep(0.5)
                    continue
                raise HubHTTPError("DELETE", str(r.url), r.status_code, r.text)
        self.server_stopped = True

    async def _wait_stopped(self, path: str) -> None:
        while True:
            model = await self.server_model(path)
            if model is None or (not model.get("pending") and not model.get("ready")):
                return
            await asyncio.sleep(0.5)

    async def aclose(self) -> None:
        await self.browser.aclose()


def _retry_after(r: httpx.Response) -> float:
    try:
        return max(0.5, float(r.headers.get("retry-after", "5")))
    except ValueError:
        return 5.0
