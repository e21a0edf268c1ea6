"""The hub under a real WSGI server: gunicorn serves ``hubkit.wsgi:create_app()`` (a2wsgi in between), with the demo
config (hubkit-proxy in front, local spawner, JupyterLab). A browser logs in, starts a server, watches the progress
page (server-sent events through the WSGI adapter), reaches JupyterLab through the proxy, runs a cell and stops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest
from e2e_hub import BIN, Hub, _require, merge, to_toml
from hubkit.testing.processes import PROXY_PORTS_FILE, answers, bound_socket, read_ports
from test_browser_flow import full_flow

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


class WsgiHub(Hub):
    """The same hub, served by gunicorn instead of the ``hubkit`` command."""

    def start(self, timeout: float = 60) -> None:
        gunicorn = shutil.which("gunicorn", path=str(BIN))
        _require(gunicorn is not None, "gunicorn not installed")
        assert gunicorn is not None
        # gunicorn is handed the hub's listening socket (no race for a free port), and the config names its
        # port so that the hub's URLs carry it; the proxy the hub launches binds port 0 and reports its ports
        with bound_socket(listen=True) as sock:
            self.hub_port = int(sock.getsockname()[1])
            self.config = merge(self.config, {"hub": {"hub_port": self.hub_port}})
            self.config_path.write_text(to_toml(self.config))
            with (self.data_dir / "hub.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    [gunicorn, "--workers", "1", "--threads", "32", "--bind", f"fd://{sock.fileno()}",
                     "hubkit.wsgi:create_app()"],
                    cwd=self.data_dir,
                    env={**self.env, "HUBKIT_CONFIG": str(self.config_path)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=[sock.fileno()],
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # through the proxy the hub launched: the whole path is up
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if not self.port:
                self.port = read_ports(self.data_dir / PROXY_PORTS_FILE).get("port", 0)
            elif answers(f"{self.url}/hub/api"):
                return
            time.sleep(0.05)
        raise AssertionError(f"hub did not answer within {timeout}s:\n{self.log()[-4000:]}")


def test_browser_flow_under_gunicorn(browser: Any, tmp_path: Any) -> None:
    _require(shutil.which("hubkit-singleuser", path=os.path.dirname(sys.executable)) is not None,
             "hubkit-singleuser not installed")
    hub = WsgiHub(tmp_path / "wsgi")
    try:
        hub.start()
        assert "gunicorn" in hub.log() and "Booting worker" in hub.log()
        full_flow(browser, hub, "wanda")
    finally:
        hub.cleanup()
    assert "Traceback" not in hub.log(), hub.log()[-4000:]
