"""Test and benchmark helper: run code in a kernel over the real kernel websocket (Jupyter messaging v5).

Needs ``websocket-client`` (the ``test`` extra). Used by the package tests, tests/e2e and benchmarks/spawn.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import websocket  # type: ignore[import-untyped]


def connect(http_base: str, kernel_id: str, headers: dict[str, str]) -> websocket.WebSocket:
    ws_url = http_base.replace("http://", "ws://", 1) + f"api/kernels/{kernel_id}/channels"
    return websocket.create_connection(
        ws_url,
        header=[f"{k}: {v}" for k, v in headers.items()],
        timeout=60,
        # small frames: without NODELAY, Nagle + delayed ACKs add ~40 ms to each round trip
        sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )


def send_execute(ws: websocket.WebSocket, code: str) -> str:
    msg_id = uuid.uuid4().hex
    msg: dict[str, Any] = {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
        "channel": "shell",
        "buffers": [],
    }
    ws.send(json.dumps(msg))
    return msg_id


def execute(ws: websocket.WebSocket, code: str, timeout: float = 60) -> str:
    """Execute and return the text result (stream output or execute_result), raising on kernel errors."""
    msg_id = send_execute(ws, code)
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        t = msg["msg_type"]
        if t == "stream":
            out.append(msg["content"]["text"])
        elif t == "execute_result":
            out.append(msg["content"]["data"].get("text/plain", ""))
        elif t == "error":
            raise RuntimeError(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        elif t == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)
    raise TimeoutError(f"no reply to {code!r} within {timeout}s")
