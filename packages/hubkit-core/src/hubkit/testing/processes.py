"""Helpers for tests that run the real ``hubkit`` CLI as a process (restart, kill -9, re-adoption)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
HUB_PORTS_FILE = "hub.ports.json"  # written by a hub whose own port is 0 (hubkit.runtime.ports)
PROXY_PORTS_FILE = "hubkit-proxy.ports.json"  # written by the embedded hubkit-proxy (its --ports-file)
EMBEDDED_PROXY_LOG = "hubkit-proxy.log"  # the embedded hubkit-proxy's output, by default in the data dir
ADDRESS_IN_USE = "address already in use"
# how programs say their port was taken: errno text (Python, uvicorn), node, jupyter_server
PORT_TAKEN = (ADDRESS_IN_USE, "eaddrinuse", "is already in use")


def port_taken(log_text: str) -> bool:
    """Does this log say the program could not bind its port because another program holds it?"""
    text = log_text.lower()
    return any(marker in text for marker in PORT_TAKEN)


def free_port() -> int:
    """A port that was free a moment ago. Only for programs that cannot bind port 0 and report it (CHP, nginx,
    JupyterHub, an OAuth provider's registered redirect): start those with ``retry_on_address_in_use``.
    A hub gets port 0 and reports its ports: see ``wait_bound_ports``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet_port(host: str = "127.0.0.1") -> int:
    """A port below the kernel's ephemeral range that could be bound just now, for a server whose address must be
    written down before it starts and that cannot report a port of its own choosing (a managed service's url,
    nginx). Outgoing connections of other programs only ever get ephemeral ports, so only another listener could
    take this one in between; start such servers with ``retry_on_address_in_use`` all the same."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(low, 20001))
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError("no bindable port below the ephemeral range")


def bound_socket(*, listen: bool = False) -> socket.socket:
    """A socket bound to a port the kernel picked, for a server in this process: hand it the socket itself
    (uvicorn ``serve(sockets=[...])``, hypercorn ``fd://``), so no other program can take the port."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    if listen:
        sock.listen(128)
    return sock


def read_ports(path: Path) -> dict[str, int]:
    """A ports file's ports (``pid`` left out); empty if missing, half-written or left by a dead process."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not pid_alive(int(data.get("pid", 0) or 0)):
        return {}
    return {k: int(v) for k, v in data.items() if k != "pid" and isinstance(v, int)}


def wait_bound_ports(
    data_dir: Path, proc: subprocess.Popen[bytes], *, proxy: bool = True, limit: float = 60
) -> dict[str, int]:
    """The ports a hub started with port 0 got: ``hub_port`` (``port`` without a proxy) from the hub, and
    ``port`` / ``api_port`` from its embedded hubkit-proxy when ``proxy``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the hub exited with {proc.returncode} before reporting its ports")
        hub = read_ports(data_dir / HUB_PORTS_FILE)
        prox = read_ports(data_dir / PROXY_PORTS_FILE) if proxy else {}
        if hub and (prox or not proxy):
            return {**hub, **prox}
        time.sleep(0.05)
    raise AssertionError(f"no ports reported in {data_dir} within {limit}s")


def start_hub_process(
    launch: Callable[[], subprocess.Popen[bytes]],
    data_dir: Path,
    log_text: Callable[[], str],
    ready: Callable[[], bool],
    *,
    learn_ports: bool,
    on_ports: Callable[[dict[str, int]], None] = lambda ports: None,
    proxy: bool = True,
    limit: float = 60,
) -> subprocess.Popen[bytes]:
    """Start a hub with ``launch`` and wait until ``ready()``.

    First start (``learn_ports``): the config says port 0 everywhere; the ports the hub and its proxy got are
    passed to ``on_ports`` (which should pin them in the config: a restarted hub must come back where running
    servers and browsers expect it). A restart on pinned ports that finds one still held by a lingering
    connection of another program (EADDRINUSE in the new lines of the hub's log or its embedded proxy's) is
    tried again until ``limit``.
    """
    deadline = time.monotonic() + limit
    proxy_log = data_dir / EMBEDDED_PROXY_LOG
    while True:
        seen = len(log_text())
        seen_proxy = proxy_log.stat().st_size if proxy_log.exists() else 0
        proc = launch()
        try:
            if learn_ports:
                on_ports(wait_bound_ports(data_dir, proc, proxy=proxy, limit=limit))
            while not ready():
                if proc.poll() is not None:
                    raise AssertionError(f"the hub exited with {proc.returncode}:\n{log_text()[-4000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"the hub did not answer within {limit}s:\n{log_text()[-4000:]}")
                time.sleep(0.05)
            return proc
        except AssertionError:
            if proc.poll() is None:  # a start that failed leaves no process behind
                proc.kill()
            proc.wait(10)
            fresh = log_text()[seen:] + _read_from(proxy_log, seen_proxy)
            if not port_taken(fresh) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def answers(url: str, status: int = 200) -> bool:
    """One GET; True when it answers ``status`` (connection errors are False): a ``ready`` check."""
    try:
        return httpx.get(url, timeout=2).status_code == status
    except httpx.TransportError:
        return False


def retry_on_address_in_use(start: Callable[[], T], output: Callable[[], str], attempts: int = 5) -> T:
    """``start()`` again while it fails and ``output()`` (the program's log) says its port was taken: for
    programs given a ``free_port()`` because they cannot report a port of their own choosing."""
    for attempt in range(attempts):
        try:
            return start()
        except (AssertionError, RuntimeError, OSError):
            if attempt == attempts - 1 or not port_taken(output()):
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")  # pragma: no cover


def popen_hub(
    config: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """``hubkit -f config`` (this interpreter's), its output appended to ``log``; ``env`` over this process's.
    ``new_session``: a group of its own, so a test can kill the hub without signalling itself."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hubkit.cli", "-f", str(config)],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
        )


def start_hub_cli(
    config: Path, log: Path, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``hubkit -f config`` writing to ``log``; returns the process and its monotonic start time."""
    t0 = time.monotonic()
    return popen_hub(config, log, env), t0


def launch_hub_cli(
    config: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    health: Callable[[], str],
    data_dir: Path,
    learn_ports: bool,
    on_ports: Callable[[dict[str, int]], None] = lambda ports: None,
    proxy: bool = True,
    limit: float = 60,
) -> tuple[subprocess.Popen[bytes], float]:
    """``start_hub_cli`` through ``start_hub_process`` (port 0 learned, or pinned ports retried on EADDRINUSE);
    returns the process and the seconds from its start until ``health()`` (a URL) answered 200."""
    started = [0.0]

    def launch() -> subprocess.Popen[bytes]:
        proc, started[0] = start_hub_cli(config, log, env)
        return proc

    proc = start_hub_process(
        launch,
        data_dir,
        lambda: log.read_text(errors="replace") if log.exists() else "",
        lambda: answers(health()),
        learn_ports=learn_ports,
        on_ports=on_ports,
        proxy=proxy,
        limit=limit,
    )
    return proc, time.monotonic() - started[0]


def start_hub_port_zero(
    config: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    data_dir: Path,
    proxy: bool = False,
    limit: float = 60,
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """A hub whose config says port 0 (for the proxy too when ``proxy``): its process and the ports it reported,
    once its own ``/hub/health`` answers."""
    got: dict[str, int] = {}
    key = "hub_port" if proxy else "port"
    proc, _ = launch_hub_cli(
        config,
        log,
        env,
        health=lambda: f"http://127.0.0.1:{got[key]}/hub/health",
        data_dir=data_dir,
        learn_ports=True,
        on_ports=got.update,
        proxy=proxy,
        limit=limit,
    )
    return proc, got


def terminate(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM (an orderly stop), then SIGKILL after ``grace`` seconds; nothing if the process already ended."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def wait_health(url: str, proc: subprocess.Popen[bytes], t0: float, limit: float = 30) -> float:
    """Seconds from ``t0`` until ``url`` answers 200; fails if the process exits first."""
    while time.monotonic() - t0 < limit:
        assert proc.poll() is None, "the hub exited"
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} never answered")


def wait_log(log: Path, needle: str, limit: float = 30) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in hub log:\n{log.read_text(errors='replace')[-3000:]}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def machine_is_overloaded() -> bool:
    """Load average above twice the CPU count: wall-clock checks would measure the neighbours."""
    return os.getloadavg()[0] > 2 * (os.cpu_count() or 1)


def cli_token(config: Path, user: str, env: Mapping[str, str] | None = None) -> str:
    """An API token for ``user`` from ``hubkit -f config token USER`` (the user must exist or be an admin)."""
    return subprocess.run(
        [sys.executable, "-m", "hubkit.cli", "-f", str(config), "token", user],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()


def hub_api(port: int, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    """One request to ``http://127.0.0.1:<port>/hub/api<path>`` with ``Authorization: token``."""
    return httpx.request(
        method,
        f"http://127.0.0.1:{port}/hub/api{path}",
        json=body,
        timeout=30,
        headers={"Authorization": f"token {token}"},
    )
