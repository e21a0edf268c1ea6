"""One measurement each: wrk for HTTP, ws_load.py for websockets, /proc (through psutil) for CPU and memory.

CPU is counted for a process and its children (a master with its workers, nginx with its workers), so a
multi-process target pays for every process it runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, seconds: int, conns: int = 50, threads: int = 2) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    res: dict[str, float] = {"rps": 0.0, "requests": 0.0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        res["requests"] = float(m.group(1))
    for pct in ("50", "99"):
        if m := re.search(rf"\s{pct}%\s+(\S+)", out):
            res[f"p{pct}_ms"] = _ms(m.group(1))
    res["non2xx"] = float(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0.0
    errors = re.search(r"Socket errors:.*", out)
    res["socket_errors"] = (
        float(sum(int(x) for x in re.findall(r"\w+ (\d+)", errors.group(0)))) if errors else 0.0
    )
    return res


def ws_load(mode: str, url: str, a: int, b: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "ws_load.py"), mode, url, str(a), str(b)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live children."""
    total = 0.0
    for p in _tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree_memory(pid: int) -> dict[str, Any]:
    """RSS and PSS (shared pages split between the processes sharing them) of ``pid`` and its children, MiB."""
    rss = pss = 0.0
    procs = _tree(pid)
    for p in procs:
        try:
            full = p.memory_full_info()
            rss += full.rss
            pss += getattr(full, "pss", full.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return {"rss_mib": rss / 2**20, "pss_mib": pss / 2**20, "processes": len(procs)}
