"""A kernel as JupyterLab drives it: ``POST api/kernels``, the ``channels`` websocket (Jupyter messaging
protocol 5.3 as JSON text frames), ``kernel_info_request``, then ``execute_request`` per cell with the output
collected from iopub and checked against what the cell should print."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from .browser import Browser, HubHTTPError, tls_context

PROTOCOL_VERSION = "5.3"


class KernelError(Exception):
    """The kernel answered, but not as a working kernel should (error reply, wrong output, closed socket)."""


class Kernel:
    def __init__(self, browser: Browser, server_url: str, user: str, timeout: float) -> None:
        self.browser = browser
        self.timeout = timeout  # per request, per reply
        self.server_url = server_url  # absolute path of the server, e.g. /user/alice/
        self.user = user
        self.kernel_id: str | None = None
        self.session = uuid.uuid4().hex
        self.ws: ClientConnection | None = None

    def _xsrf_headers(self) -> dict[str, str]:
        """Jupyter Server's XSRF rule for cookie-authenticated requests: echo its ``_xsrf`` cookie."""
        if self.browser.token:
            return {}
        value = self.browser.cookie("_xsrf", self.server_url)
        return {"X-XSRFToken": value} if value else {}

    async def start(self) -> None:
        o = self.browser.origin
        r = await self.browser.request(
            "GET", o.absolute(self.server_url + "api/kernelspecs"), headers=self._xsrf_headers()
        )
        if r.status_code != 200:
            raise HubHTTPError("GET", str(r.url), r.status_code, r.text)
        name = r.json().get("default") or "python3"
        r = await self.browser.request(
            "POST",
            o.absolute(self.server_url + "api/kernels"),
            json={"name": name},
            headers={**self._xsrf_headers(), "Origin": o.text},
        )
        if r.status_code not in (200, 201):
            raise HubHTTPError("POST", str(r.url), r.status_code, r.text)
        self.kernel_id = str(r.json()["id"])
        ws_url = o.ws(f"{self.server_url}api/kernels/{self.kernel_id}/channels?session_id={self.session}")
        o.check(ws_url)
        headers: dict[str, str] = {}
        cookie = self.browser.cookie_header(ws_url.replace("ws", "http", 1))
        if cookie:
            headers["Cookie"] = cookie
        if self.browser.token:
            headers["Authorization"] = f"token {self.browser.token}"
        self.ws = await connect(
            ws_url,
            origin=o.text,  # type: ignore[arg-type]
            additional_headers=headers,
            proxy=None,  # never through an environment proxy: the credentials go to the hub only
            open_timeout=self.timeout,
            max_size=16 * 1024 * 1024,
            user_agent_header="hubkit-rehearse/0.1",
            ssl=tls_context(self.browser.ca_file) if ws_url.startswith("wss:") else None,
        )
        await self._roundtrip("kernel_info_request", {})

    def _message(self, msg_type: str, content: dict[str, Any], channel: str) -> dict[str, Any]:
        return {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "username": self.user,
                "session": self.session,
                "msg_type": msg_type,
                "version": PROTOCOL_VERSION,
                "date": datetime.now(UTC).isoformat(),
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }

    async def _roundtrip(self, msg_type: str, content: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Send on shell; return (reply content, collected output) once the reply and iopub idle are in."""
        assert self.ws is not None
        msg = self._message(msg_type, content, "shell")
        msg_id = msg["header"]["msg_id"]
        await self.ws.send(json.dumps(msg))
        reply: dict[str, Any] | None = None
        idle = False
        output: list[str] = []
        async with asyncio.timeout(self.timeout):
            while reply is None or (msg_type == "execute_request" and not idle):
                raw = await self.ws.recv()
                data = json.loads(raw)
                if data.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = data.get("header", {}).get("msg_type") or data.get("msg_type")
                body = data.get("content", {})
                if data.get("channel") == "shell" and kind.endswith("_reply"):
                    reply = body
                elif kind == "stream":
                    output.append(str(body.get("text", "")))
                elif kind in ("execute_result", "display_data"):
                    output.append(str(body.get("data", {}).get("text/plain", "")))
                elif kind == "error":
                    output.append(f"{body.get('ename')}: {body.get('evalue')}")
                elif kind == "status" and body.get("execution_state") == "idle":
                    idle = True
        return reply, "".join(output)

    async def execute(self, code: str, expect: str) -> None:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        reply, output = await self._roundtrip("execute_request", content)
        if reply.get("status") != "ok":
            raise KernelError(f"cell raised {reply.get('ename')}: {reply.get('evalue')}")
        if expect not in output:
            raise KernelError(f"cell output {output.strip()[:80]!r} does not contain {expect!r}")

    async def close(self) -> None:
        """Close the websocket and shut the kernel down (as closing a notebook does); best effort."""
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except (TimeoutError, OSError):
                pass
            self.ws = None
        if self.kernel_id is not None:
            try:
                await self.browser.request(
                    "DELETE",
                    self.browser.origin.absolute(f"{self.server_url}api/kernels/{self.kernel_id}"),
                    headers={**self._xsrf_headers(), "Origin": self.browser.origin.text},
                )
            except httpx.HTTPError:  # the server may already be gone; stopping it ends the kernel anyway
                pass
            self.kernel_id = None
