"""Per-server log files under ``<data_dir>/logs``; the tail feeds failure messages and the admin page."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import time

CHUNK = 8192


def log_path(data_dir: str, user: str, server: str) -> str:
    """One file per (user, server), never shared: a readable prefix (bounded, so long names fit a file name)
    plus a digest of the exact pair, so ``a`` + server ``b`` and user ``a.b`` (or ``zoë`` and ``zo_``) differ."""
    readable = re.sub(r"[^A-Za-z0-9_.@+-]", "_", user + (f".{server}" if server else ""))[:64]
    digest = hashlib.sha256(f"{user}\0{server}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return os.path.join(os.path.abspath(data_dir), "logs", f"{readable}-{digest}.log")


def open_log(path: str, cmd: list[str]) -> int:
    """Open (append) the log and write a start marker; returns a raw fd for the child's stdout/stderr."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    shown = shlex.join(cmd).replace("\n", "\\n").replace("\r", "\\r")  # the marker must stay one line
    os.write(fd, f"--- hubkit: starting {shown} at {stamp} ---\n".encode())
    return fd


def tail(path: str, lines: int) -> list[str]:
    """Last ``lines`` lines of the newest run (after the last start marker), read from the end."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            buf = b""
            pos = end
            while pos > 0 and buf.count(b"\n") <= lines and b"--- hubkit: starting" not in buf:
                step = min(CHUNK, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
    except FileNotFoundError:
        return []
    text = buf.decode(errors="replace")
    marker = text.rfind("--- hubkit: starting")
    if marker >= 0:
        text = text[marker:].split("\n", 1)[1] if "\n" in text[marker:] else ""
    out = text.splitlines()
    return out[-lines:]
