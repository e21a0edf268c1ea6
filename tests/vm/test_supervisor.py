"""supervisord runs the examples/vm program file: restarts the hub after kill -9; servers and proxy survive."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hubkit.testing import require

from .hubapi import alive, api, start_server, user_pids, user_token
from .hubproc import EXAMPLE, VENV_BIN, HubProcess, read_pid, wait_http

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

SUPERVISORD = shutil.which("supervisord") or "/usr/bin/supervisord"
SUPERVISORCTL = shutil.which("supervisorctl") or "/usr/bin/supervisorctl"

MAIN_CONF = """\
[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
nodaemon=true

[unix_http_server]
file={d}/supervisor.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{d}/supervisor.sock

[include]
files = {d}/conf.d/*.conf
"""


def adapt_program(text: str, *, config: Path, workdir: Path, user_bin: Path) -> str:
    swaps = [
        ("/opt/hubkit/venv/bin/hubkit -f /etc/hubkit/hubkit.toml", f"{VENV_BIN}/hubkit -f {config}"),
        ("directory=/var/lib/hubkit", f"directory={workdir}"),
        ('PATH="/opt/hubkit/venv/bin:', f'PATH="{user_bin}:{VENV_BIN}:'),
        ("stdout_logfile=/var/log/hubkit/hubkit.log", f"stdout_logfile={workdir}/hub.log"),
    ]
    for old, new in swaps:
        assert old in text, f"examples/vm/supervisor-hubkit.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


@contextmanager
def supervisord(workdir: Path, hub: HubProcess) -> Iterator[Callable[..., str]]:
    require(Path(SUPERVISORD).exists(), "supervisord is not installed (apt-get install supervisor)")
    (workdir / "conf.d").mkdir(parents=True)
    (workdir / "supervisord.conf").write_text(MAIN_CONF.format(d=workdir))
    program = adapt_program(
        (EXAMPLE / "supervisor-hubkit.conf").read_text(),
        config=hub.write_config(),
        workdir=hub.workdir,
        user_bin=hub.user_bin,
    )
    (workdir / "conf.d" / "hubkit.conf").write_text(program)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBKIT_")}
    proc = subprocess.Popen(
        [SUPERVISORD, "-c", str(workdir / "supervisord.conf")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ctl(*args: str) -> str:
        out = subprocess.run(
            [SUPERVISORCTL, "-c", str(workdir / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return out.stdout.strip()

    try:
        yield ctl
    finally:
        ctl("stop", "hubkit")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def hub_pid(ctl: Callable[..., str], not_pid: int = 0, timeout: float = 60) -> int:
    """The hub's pid as supervisord reports it (waiting for a *new* one when ``not_pid`` is given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = ctl("pid", "hubkit")
        if out.isdigit() and int(out) not in (0, not_pid):
            return int(out)
        time.sleep(0.2)
    raise TimeoutError(f"supervisord did not (re)start the hub: {ctl('status')}")


def test_supervisord_restarts_hub_and_servers_survive(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str], tmp_path: Path
) -> None:
    gina = student("gina")
    uid = pwd.getpwnam(gina).pw_uid
    hub = make_hub()
    with supervisord(tmp_path / "supervisor", hub) as ctl:
        first = hub_pid(ctl)
        wait_http(f"{hub.url}/hub/health", 60)
        assert os.getpgid(first) == first, "supervisord makes the hub a process-group leader"
        token = user_token(hub, gina)
        server = start_server(hub, gina, token)
        server_pids = user_pids(uid)
        assert server_pids, "the server runs as the user's own uid"
        assert all(os.getpgid(p) != first for p in server_pids), "servers are outside the hub's process group"
        proxy = read_pid(Path(hub.config["hub"]["data_dir"]) / "hubkit-proxy.pid")
        assert proxy is not None and alive(proxy) and os.getpgid(proxy) != first

        os.kill(first, signal.SIGKILL)
        second = hub_pid(ctl, not_pid=first)
        wait_http(f"{hub.url}/hub/health", 60)
        assert not alive(first)
        assert all(alive(p) for p in server_pids), "a hub crash must not take the user's server down"
        assert alive(proxy) and read_pid(Path(hub.config["hub"]["data_dir"]) / "hubkit-proxy.pid") == proxy

        with api(hub, token) as c:
            # the restarted hub re-adopted the server, and the proxy still routes to it
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                model = c.get(f"/users/{gina}").json()
                if model["servers"].get("", {}).get("ready"):
                    break
                time.sleep(0.5)
            assert model["servers"][""]["ready"], model
            assert model["servers"][""]["url"] == server["url"]
            r = c.get(f"{hub.url}{server['url']}api/status")
            assert r.status_code == 200, r.text

        # an orderly stop (stopasgroup) also leaves servers and proxy running
        ctl("stop", "hubkit")
        deadline = time.monotonic() + 30
        while alive(second) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(second)
        assert all(alive(p) for p in server_pids) and alive(proxy)
