#!/usr/bin/env python3
"""API latency and login throughput: hubkit against JupyterHub 6.1.1, in the same run, with 10,000 users.

    /work/venv/bin/python benchmarks/api/run.py [--workers 2] [--duration 10] [--users 10000]

Both hubs use SQLite, the dummy authenticator and no proxy (requests go to each hub's own port); JupyterHub
gets a no-op spawner and proxy class. Load comes from ``wrk`` (latency percentiles from ``--latency``).
Prints a table and the hubkit/JupyterHub ratios, and writes ``results.json`` next to this script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
PAGED = {"Accept": "application/jupyterhub-pagination+json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def hubkit_settings(data: Path, port: int) -> dict[str, Any]:
    return {
        "hub": {
            "data_dir": str(data),
            "db_url": "sqlite:///hub.sqlite",
            "ip": "127.0.0.1",
            "port": port,
            "log_level": "WARNING",
        },
        "spawner": {"backend": "test"},
        "proxy": {"backend": "none"},
    }


async def hubkit_prepare(settings: dict[str, Any], token: str) -> None:
    """Create the schema and an admin token with a known secret (as ``hubkit token`` would)."""
    from hubkit.auth.tokens import issue_token
    from hubkit.config.models import Settings
    from hubkit.runtime.hub import Hub
    from hubkit.services.users import new_user

    hub = await Hub.create(Settings.model_validate(settings), load_entry_points=False)
    await hub.start()
    async with hub.db() as s:
        user = new_user("bench-admin", admin=True)
        s.add(user)
        await s.flush()
        await issue_token(s, user_id=user.id, scopes=["inherit"], secret=token)
        await s.commit()
    await hub.stop()


def add_users(base: str, token: str, start: int, n: int) -> None:
    h = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=base, timeout=300) as c:
        for first in range(start, n, 250):
            names = [f"user{i:05d}" for i in range(first, min(n, first + 250))]
            r = c.post("/hub/api/users", json={"usernames": names}, headers=h)
            if r.status_code not in (201, 409):
                raise RuntimeError(f"creating users failed: {r.status_code} {r.text[:300]}")


def bulk_insert_jupyterhub(db_url: str, start: int, n: int) -> None:
    """JupyterHub's own ORM, with the default ``user`` role, like users created through its API."""
    from jupyterhub import orm

    db = orm.new_session_factory(db_url)()
    role = db.query(orm.Role).filter_by(name="user").one()
    users = [orm.User(name=f"user{i:05d}") for i in range(start, n)]
    db.add_all(users)
    db.flush()
    db.execute(
        orm.Base.metadata.tables["user_role_map"].insert(),
        [{"user_id": u.id, "role_id": role.id} for u in users],
    )
    db.commit()
    db.close()


async def bulk_insert_hubkit(settings: dict[str, Any], start: int, n: int) -> None:
    from hubkit.config.models import Settings
    from hubkit.runtime.hub import Hub
    from hubkit.storage.orm import User
    from sqlalchemy import insert

    hub = await Hub.create(Settings.model_validate(settings), load_entry_points=False)
    async with hub.db() as s:
        await s.execute(
            insert(User),
            [
                {"name": f"user{i:05d}", "admin": False, "cookie_id": secrets.token_hex(16)}
                for i in range(start, n)
            ],
        )
        await s.commit()
    await hub.engine.dispose()


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(out: str) -> dict[str, float]:
    res: dict[str, float] = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if m:
            res[f"p{pct}_ms"] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["errors"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = float(m.group(1)) if m else 0.0
    return res


def wrk(
    url: str,
    conns: int,
    duration: int,
    headers: dict[str, str],
    script: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    cmd = ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "30s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True
    ).stdout
    return parse_wrk(out)


def login_form(base: str, cookie_name: str) -> tuple[str, str]:
    r = httpx.get(f"{base}/hub/login", timeout=30, headers={"User-Agent": "hubkit-bench"})
    m = re.search(r'name="_xsrf" value="([^"]+)"', r.text)
    if not m or cookie_name not in r.cookies:
        raise RuntimeError(f"no xsrf form/cookie on {base}/hub/login")
    # every cookie the login page set (JupyterHub ties its _xsrf token to jupyterhub-session-id)
    return m.group(1), "; ".join(f"{k}={v}" for k, v in r.cookies.items())


def bench_hub(name: str, base: str, token: str, duration: int, user_url: str) -> dict[str, Any]:
    auth = {"Authorization": f"token {token}"}
    out: dict[str, Any] = {}
    for label, path, extra in (
        ("get_user", user_url, {}),
        ("list_users_100", "/hub/api/users?limit=100", PAGED),
    ):
        for conns in (1, 50):
            wrk(base + path, conns, 2, {**auth, **extra})  # warm-up
            r = wrk(base + path, conns, duration, {**auth, **extra})
            out[f"{label}@{conns}"] = r
            print(
                f"  {name:10s} {label:15s} c={conns:<3d} p50={r['p50_ms']:8.2f} ms  p99={r['p99_ms']:8.2f} ms  "
                f"{r['rps']:8.1f} req/s  errors={r['errors']:.0f}",
                flush=True,
            )
    return out


def bench_login(name: str, base: str, cookie_name: str, duration: int) -> dict[str, float]:
    xsrf, cookie = login_form(base, cookie_name)
    env = {"BENCH_LOGIN_PATH": "/hub/login", "BENCH_XSRF": xsrf, "BENCH_COOKIE": cookie}
    r = wrk(base + "/hub/login", 50, duration, {}, script=str(HERE / "login.lua"), env=env)
    # only successful logins (302) count; wrk's req/s includes refusals
    r["logins_per_s"] = r["rps"] * (1 - r["errors"] / r["requests"]) if r["requests"] else 0.0
    print(
        f"  {name:10s} {'login':15s} c=50  {r['logins_per_s']:8.1f} logins/s  p50={r['p50_ms']:.1f} ms  "
        f"p99={r['p99_ms']:.1f} ms  refused={r['errors']:.0f}",
        flush=True,
    )
    return r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes for hubkit")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument(
        "--api-users", type=int, default=500, help="how many users to create through the APIs (timed)"
    )
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is required (apt-get install wrk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="hubkit-api-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        token = secrets.token_hex(16)
        # ---- hubkit
        hk_port = free_port()
        hk_settings = hubkit_settings(tmp / "hubkit", hk_port)
        asyncio.run(hubkit_prepare(hk_settings, token))
        env = {**os.environ, "HUBKIT_BENCH_SETTINGS": json.dumps(hk_settings)}
        procs.append(
            subprocess.Popen(
                [
                    str(VENV_BIN / "uvicorn"),
                    "hubkit_app:app",
                    "--app-dir",
                    str(HERE),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(hk_port),
                    "--workers",
                    str(args.workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env=env,
                cwd=tmp,
                start_new_session=True,
            )
        )
        hk = f"http://127.0.0.1:{hk_port}"
        wait_http(hk + "/hub/api")
        # ---- JupyterHub 6.1.1
        jh_port = free_port()
        jh_env = {
            **os.environ,
            "BENCH_JH_PORT": str(jh_port),
            "BENCH_JH_PUBLIC_PORT": str(free_port()),
            "BENCH_JH_DB": f"sqlite:///{tmp / 'jupyterhub.sqlite'}",
            "BENCH_JH_SECRET": str(tmp / "jh_cookie_secret"),
            "BENCH_TOKEN": token,
        }
        (tmp / "jh").mkdir()
        procs.append(
            subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(HERE / "jupyterhub_config.py")],
                env=jh_env,
                cwd=tmp / "jh",
                start_new_session=True,
                stdout=open(tmp / "jh.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )
        jh = f"http://127.0.0.1:{jh_port}"
        wait_http(jh + "/hub/api")
        # the first users go through each hub's API (timed); the rest are bulk-inserted with each hub's own ORM,
        # because JupyterHub's POST /users slows down as the table grows (about 1,200 users in 4 minutes here)
        via_api = min(args.users, args.api_users)
        print(f"creating {via_api} users through each hub's API ...", flush=True)
        t0 = time.monotonic()
        add_users(hk, token, 0, via_api)
        t_hk = time.monotonic() - t0
        t0 = time.monotonic()
        add_users(jh, token, 0, via_api)
        t_jh = time.monotonic() - t0
        print(
            f"  hubkit {t_hk:.1f} s, JupyterHub {t_jh:.1f} s; bulk-inserting the other {args.users - via_api}",
            flush=True,
        )
        asyncio.run(bulk_insert_hubkit(hk_settings, via_api, args.users))
        bulk_insert_jupyterhub(jh_env["BENCH_JH_DB"], via_api, args.users)
        for base in (hk, jh):
            r = httpx.get(
                f"{base}/hub/api/users?limit=1",
                headers={"Authorization": f"token {token}", **PAGED},
                timeout=120,
            )
            print(f"  {base}: {r.json()['_pagination']['total']} users", flush=True)
        user_url = f"/hub/api/users/user{args.users // 2:05d}"
        print(
            f"hubkit: {args.workers} uvicorn worker(s); JupyterHub: 1 process; {os.cpu_count()} CPUs",
            flush=True,
        )
        results: dict[str, Any] = {
            "workers": args.workers,
            "users": args.users,
            "duration_s": args.duration,
            "create_users_s": {"hubkit": t_hk, "jupyterhub": t_jh},
        }
        results["hubkit"] = bench_hub("hubkit", hk, token, args.duration, user_url)
        results["jupyterhub"] = bench_hub("jupyterhub", jh, token, args.duration, user_url)
        results["hubkit"]["login@50"] = bench_login("hubkit", hk, "hubkit-xsrf", args.duration)
        results["jupyterhub"]["login@50"] = bench_login("jupyterhub", jh, "_xsrf", args.duration)
        print("\nratio JupyterHub/hubkit (higher = hubkit faster):")
        ratios: dict[str, float] = {}
        for key in ("get_user@1", "get_user@50", "list_users_100@1", "list_users_100@50"):
            a, b = results["hubkit"][key], results["jupyterhub"][key]
            ratios[f"{key} p50"] = b["p50_ms"] / a["p50_ms"] if a["p50_ms"] else 0.0
            ratios[f"{key} p99"] = b["p99_ms"] / a["p99_ms"] if a["p99_ms"] else 0.0
            print(f"  {key:20s} p50 x{ratios[key + ' p50']:.1f}   p99 x{ratios[key + ' p99']:.1f}")
        lr = results["hubkit"]["login@50"]["logins_per_s"] / max(
            1e-9, results["jupyterhub"]["login@50"]["logins_per_s"]
        )
        ratios["login@50 throughput"] = lr
        print(f"  {'login@50':20s} throughput x{lr:.1f}")
        results["ratios"] = ratios
        (HERE / "results.json").write_text(json.dumps(results, indent=2))
        return 0
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
