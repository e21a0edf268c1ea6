"""The local spawner gives two servers the same log file when their names differ only in what its file-name
rule drops: ``logs.log_path`` joins ``user`` and ``server`` with ``.`` and turns every other character outside
``[A-Za-z0-9_.@+-]`` into ``_``. So user ``a`` with a named server ``b`` and user ``a.b`` share ``a.b.log``
(likewise ``zoë`` and ``zo_``, ``zoë`` and ``zoé``), and a 255-character name plus a server name is longer than a
file name may be (``OSError: File name too long`` → 500; the test spawner's process mode has the same limit, found
by schemathesis with ``--seed 777``).

The log's tail is shown to the owner when a spawn fails (``log_tail`` in the progress events) and on the admin
page, so a user who picks such a server name reads another user's server output as their own failure message.

Fault: ``hubkit_spawn_local/logs.py`` ``log_path`` (an injective, bounded file name: e.g. escape instead of
replace, and hash when long); ``hubkit/builtin/test_spawner.py`` ``_start_process`` (length).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hardhub import HardHub
from probehub import kill_servers, plugins

pytestmark = [pytest.mark.timeout(240)]

SERVER = """
import os, sys, threading, time
user, server = os.environ["JUPYTERHUB_USER"], os.environ.get("JUPYTERHUB_SERVER_NAME", "")
def chatter():
    while True:
        print(f"private output of {user}/{server}", flush=True)
        time.sleep(0.2)
threading.Thread(target=chatter, daemon=True).start()
if server == "b":
    time.sleep(2)
    sys.exit("this server fails on purpose")
from hubkit.builtin.tiny_server import main
sys.exit(main())
"""


class LocalHub(HardHub):
    """The hardening hub with the local spawner running a tiny server as the hub's own user."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config.read_text().replace('[spawner]\nbackend = "test"', '[spawner]\nbackend = "local"')
        script = self.tmp / "server.py"
        script.write_text(SERVER)
        text += f'\n[spawner.local]\ncmd = ["{sys.executable}", "{script}"]\nhome_dir = "{self.tmp}"\n'
        self.config.write_text(text)

    def start(self) -> HardHub:
        with plugins("proxy,spawn-local"):
            return super().start()

    def token(self, user: str = "boss") -> str:
        with plugins("proxy,spawn-local"):
            return super().token(user)


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HardHub]:
    h = LocalHub(
        tmp_path_factory.mktemp("probe-local"), "sqlite:///hub.sqlite", extra="allow_named_servers = true"
    )
    h.start()
    yield h
    h.stop()
    kill_servers(h)


def _wait(hub: HardHub, boss: str, user: str, server: str, want: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        model = hub.api("GET", f"/users/{user}", boss, params={"include_stopped_servers": "1"}).json()
        s = model["servers"].get(server, {})
        if (want == "ready" and s.get("ready")) or (want == "stopped" and s and s.get("stopped")):
            return dict(s)
        time.sleep(0.3)
    raise AssertionError(f"{user}/{server} never {want}: {model}")


def test_two_users_servers_never_share_a_log_file(local_hub: HardHub) -> None:
    hub = local_hub
    boss = hub.token("boss")
    for name in ("a", "a.b"):
        assert hub.api("POST", f"/users/{name}", boss).status_code == 201
    assert hub.api("POST", "/users/a.b/server", boss).status_code in (201, 202)
    victim = _wait(hub, boss, "a.b", "", "ready")
    assert hub.api("POST", "/users/a/servers/b", boss).status_code in (201, 202, 500)
    _wait(hub, boss, "a", "b", "stopped")
    events = hub.api("GET", "/users/a/servers/b/progress", boss, headers={"Accept": "text/event-stream"}).text
    try:
        assert "private output of a.b/" not in events, "user a's failure message shows a.b's server output"
        attacker = hub.api("GET", "/users/a/servers/b", boss).json().get("state", {})
        assert victim["state"]["log_path"] != attacker.get("log_path")
        assert Path(victim["state"]["log_path"]).name.startswith("a.b-")  # still readable in a listing
    finally:
        hub.api("DELETE", "/users/a.b/server", boss)
