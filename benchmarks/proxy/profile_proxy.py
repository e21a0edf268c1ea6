"""Where hubkit-proxy's CPU goes under each load: ``py-spy record --native`` (optional ``profile`` phase).

Each sample's innermost frame is sorted into: system calls (the kernel's side of socket I/O), hubkit_proxy's
Python code, native code of uvloop/httptools/libc/CPython, or other. The shares say whether a faster Python
data path could still help (Python share) or whether the process mostly waits on the kernel (syscall share).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stack import Stack

SYSCALLS = (
    "read",
    "write",
    "writev",
    "readv",
    "recv",
    "send",
    "sendmsg",
    "recvmsg",
    "__libc_recv",
    "__libc_send",
    "accept4",
    "close",
    "shutdown",
    "__GI___libc_write",
    "__GI___libc_read",
    "connect",
)
WAITS = ("epoll_wait", "epoll_pwait")  # the loop waiting for work: idle, not cost


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def classify(folded: str) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        total += samples
        leaf = stack.split(";")[-1]
        name = leaf.split(" (")[0]
        leaves[leaf] += samples
        if name in WAITS:
            counts["idle"] += samples
        elif name in SYSCALLS:
            counts["syscalls"] += samples
            calls[name] += samples
        elif "hubkit_proxy/" in leaf:
            counts["python"] += samples
        elif any(x in leaf for x in ("uvloop", "httptools", "libc.so", "libpython", ".c:", ".h:", "0x")):
            counts["native"] += samples
        else:
            counts["other"] += samples
    busy = total - counts["idle"]
    pct = {k: 100.0 * counts[k] / busy if busy else 0.0 for k in ("syscalls", "python", "native", "other")}
    return {
        "samples": total,
        "busy": busy,
        "idle_pct": 100.0 * counts["idle"] / total if total else 0.0,
        "syscalls_pct": pct["syscalls"],
        "python_pct": pct["python"],
        "native_pct": pct["native"],
        "other_pct": pct["other"],
        "syscalls": [name for name, _ in calls.most_common(4)],
        "top": [[leaf, round(100.0 * n / total, 1)] for leaf, n in leaves.most_common(12)] if total else [],
    }


def profile_one(pid: int, load: list[str], seconds: int) -> dict[str, Any]:
    spy = py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed"}
    out = Path(tempfile.mkdtemp(prefix="proxyprof-")) / "folded.txt"
    gen = subprocess.Popen(load, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)  # the load is up (200 websockets connected) before sampling starts
        subprocess.run(
            [
                spy,
                "record",
                "--native",
                "-r",
                "200",
                "-d",
                str(seconds),
                "-p",
                str(pid),
                "-f",
                "raw",
                "-o",
                str(out),
            ],
            capture_output=True,
            timeout=seconds + 120,
            check=False,
        )
    finally:
        gen.terminate()  # the profile is taken; the rest of the load is not needed
        gen.wait(30)
    text = out.read_text() if out.exists() else ""
    shutil.rmtree(out.parent, ignore_errors=True)
    return classify(text)


def profile_all(stack: Stack, target: str, seconds: int) -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    t = stack.targets[target]
    loads = {
        "small": ["wrk", "-t2", "-c50", f"-d{seconds + 3}s", stack.http_url(target) + "/small"],
        "1mib": ["wrk", "-t2", "-c50", f"-d{seconds + 3}s", stack.http_url(target) + "/1m.bin"],
        "ws": [sys.executable, str(here / "ws_load.py"), "echo", stack.ws_url(target), "200", "100000"],
    }
    return {test: profile_one(t.pid, cmd, seconds) for test, cmd in loads.items()}
