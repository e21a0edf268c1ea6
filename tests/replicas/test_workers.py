"""``hubkit --workers N`` end to end: one command starts N hub replicas on PostgreSQL behind the embedded
hubkit-proxy; requests through the proxy are answered by more than one worker; a worker killed -9 is restarted
while the others keep serving; SIGTERM to the command stops every worker. On SQLite it refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from hubkit.testing.processes import cli_token, pid_alive, wait_bound_ports
from hubkit_proxy import launcher

pytestmark = [pytest.mark.timeout(180)]
WORKERS = 2
ENV = {"HUBKIT_PLUGINS": "proxy"}  # the core plus hubkit-proxy's routing plugin


def _config(tmp: Path, db_url: str) -> Path:
    config = tmp / "hubkit.toml"
    config.write_text(
        f"""
[hub]
port = 0
hub_port = 0
data_dir = "{tmp / "data"}"
db_url = "{db_url}"
admin_users = ["boss"]

[spawner]
backend = "test"

[proxy]
backend = "hubkit-proxy"

[proxy.hubkit-proxy]
api_url = "http://127.0.0.1:0"
"""
    )
    return config


def test_workers_refuse_sqlite(tmp_path: Path) -> None:
    config = _config(tmp_path, "sqlite:///hub.sqlite")
    r = subprocess.run(
        [sys.executable, "-m", "hubkit.cli", "-f", str(config), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ENV},
    )
    assert r.returncode != 0
    assert "SQLite" in r.stderr and "PostgreSQL" in r.stderr and "hub.sqlite" in r.stderr
    assert not (tmp_path / "data" / "hubkit-proxy.pid").exists()  # refused before anything started


def _answering_pids(port: int, token: str, requests: int = 40) -> tuple[set[int], int]:
    """The pids of the workers that answered ``requests`` GETs at ``port`` (8 at a time, a new connection each), and
    how many requests failed. At the hub's port each connection goes to the worker the kernel picks; through the
    proxy, its pool may carry every request over the one or two connections it keeps to the hub."""

    def one(_: int) -> int | None:
        try:
            r = httpx.get(
                f"http://127.0.0.1:{port}/hub/api/info", headers={"Authorization": f"token {token}"}, timeout=10
            )
        except httpx.TransportError:
            return None
        return int(r.json()["replica"].rsplit(":", 1)[1]) if r.status_code == 200 else None

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(requests)))
    return {p for p in got if p is not None}, sum(1 for p in got if p is None)


def _workers(parent: subprocess.Popen[bytes]) -> set[int]:
    return {c.pid for c in psutil.Process(parent.pid).children() if c.status() != psutil.STATUS_ZOMBIE}


def _serving_lines(log: Path) -> int:
    return log.read_text().count(f"{WORKERS} workers serving") if log.exists() else 0


def _start(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The supervisor's process, and how many "serving" lines its log had before it started."""
    before = _serving_lines(log)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hubkit.cli", "-f", str(config), "--workers", str(WORKERS)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV},
        ), before


def _wait_workers(parent: subprocess.Popen[bytes], log: Path, before: int) -> None:
    deadline = time.monotonic() + 60
    while len(_workers(parent)) < WORKERS or _serving_lines(log) == before:
        assert parent.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def test_workers_serve_survive_a_kill_9_and_stop_on_sigterm(postgres_cluster: Any, tmp_path: Path) -> None:
    config = _config(tmp_path, postgres_cluster.url(postgres_cluster.create_database()))
    data = tmp_path / "data"
    log = tmp_path / "hubkit.log"
    parent, before = _start(config, log)
    workers: set[int] = set()
    try:
        ports = wait_bound_ports(data, parent)
        _wait_workers(parent, log, before)
        workers = _workers(parent)
        token = cli_token(config, "boss", ENV)

        seen: set[int] = set()
        for _ in range(10):  # which worker accepts a connection is the kernel's choice: a few rounds at most
            pids, failed = _answering_pids(ports["hub_port"], token)
            assert failed == 0
            seen |= pids
            if len(seen) > 1:
                break
        assert len(seen) > 1 and seen <= workers, (seen, workers)

        # worker 0: it holds the singleton duties and keeps the embedded proxy's watchdog
        victim = int(log.read_text().split("worker 0 started (pid ", 1)[1].split(")", 1)[0])
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(_workers(parent) - {victim}) < WORKERS:
            assert parent.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert "restarting it" in log.read_text()
        replaced = _workers(parent)
        assert victim not in replaced and len(replaced & workers) == WORKERS - 1
        pids, failed = _answering_pids(ports["port"], token)  # the proxy, re-connected to the workers left
        assert failed == 0 and pids <= replaced
        pids, failed = _answering_pids(ports["hub_port"], token)
        assert failed == 0 and pids <= replaced

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0
        assert not any(pid_alive(p) for p in replaced), "a worker outlived the supervisor"
        assert "every worker stopped" in log.read_text()

        # the supervisor itself killed -9: its workers notice and stop (they would hold the port from a new one)
        parent, before = _start(config, log)
        workers = set()
        _wait_workers(parent, log, before)
        workers = _workers(parent)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 30
        while any(pid_alive(p) for p in workers):
            assert time.monotonic() < deadline, "orphaned workers kept running"
            time.sleep(0.1)
    finally:
        for pid in workers:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            for pid in _workers(parent):
                os.kill(pid, signal.SIGKILL)
            parent.kill()
            parent.wait(10)
        launcher.stop(str(data / "hubkit-proxy.pid"))  # the embedded proxy outlives the hub by design
