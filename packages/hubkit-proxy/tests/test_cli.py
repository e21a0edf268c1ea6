"""Command line: CHP flags JupyterHub passes are accepted, bad input is refused clearly, explicit stop works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import ProxyProc, hubkit_proxy_cmd, make_proxy
from hubkit_proxy import launcher

pytestmark = pytest.mark.timeout(60)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*hubkit_proxy_cmd(), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--error-target", "http://x", "--error-path", "/tmp"], "cannot be combined"),
        (["--custom-header", "novalue"], "name:value"),
        (["--port", "eighty"], "invalid int value"),
        (["--log-level", "loud"], "invalid choice"),
    ],
)
def test_bad_flags_are_refused(args: list[str], message: str) -> None:
    r = run_cli(*args)
    assert r.returncode != 0
    assert message in r.stderr


def test_port_in_use_is_a_clear_error(proxy_factory: list[ProxyProc]) -> None:
    p = make_proxy("hubkit")
    p.start()
    proxy_factory.append(p)
    r = run_cli("--ip", "127.0.0.1", "--port", str(p.port), "--api-port", "0")
    assert r.returncode != 0
    assert "hubkit-proxy:" in r.stderr and "address" in r.stderr.lower()


def test_jupyterhub_style_flags_accepted(proxy_factory: list[ProxyProc]) -> None:
    # the flags JupyterHub passes, plus CHP flags we accept without implementing
    p = make_proxy(
        "hubkit",
        "--log-level",
        "info",
        "--timeout",
        "60000",
        "--proxy-timeout",
        "30000",
        "--keep-alive-timeout",
        "5000",
        "--storage-backend",
        "x",
        "--insecure",
    )
    p.start()
    proxy_factory.append(p)
    assert httpx.get(p.url + "/_chp_healthz").status_code == 200
    assert p.proc is not None
    p.kill()


def test_launcher_stop_cli(tmp_path: Path) -> None:
    pid_file = str(tmp_path / "proxy.pid")
    proc = launcher.launch(
        [*hubkit_proxy_cmd(), "--ip", "127.0.0.1", "--port", "0", "--api-port", "0"],
        {},
        pid_file,
        str(tmp_path / "proxy.log"),
    )
    try:
        stop = [sys.executable, "-m", "hubkit_proxy.launcher", "stop", pid_file]
        outputs = []
        for _ in range(2):  # first stops it, second finds nothing
            outputs.append(subprocess.run(stop, capture_output=True, text=True, timeout=30).stdout.strip())
            proc.wait(5)
        assert outputs == ["stopped", "not running"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
