"""Port 0 for the hub's own listener: a restarted hub comes back on the port its servers were given."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from hubkit.config.models import Settings
from hubkit.runtime.ports import PORTS_FILE, bind_port_zero, report_port


def settings(data_dir: Path) -> Settings:
    hub = {"hub_port": 0, "hub_ip": "127.0.0.1", "data_dir": str(data_dir)}
    return Settings.model_validate({"hub": hub, "proxy": {"backend": "hubkit-proxy"}})


def test_a_restart_binds_the_port_its_last_run_reported(tmp_path: Path) -> None:
    first, sock = bind_port_zero(settings(tmp_path))
    assert sock is not None
    port = first.hub.hub_port
    assert port != 0
    report_port(first, sock)
    sock.close()  # the hub died
    again, sock2 = bind_port_zero(settings(tmp_path))
    assert sock2 is not None
    try:
        assert again.hub.hub_port == port == sock2.getsockname()[1]
    finally:
        sock2.close()


def test_a_port_taken_meanwhile_gives_a_new_one(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    (tmp_path / PORTS_FILE).write_text(json.dumps({"pid": 1, "hub_port": taken}))
    try:
        got, sock = bind_port_zero(settings(tmp_path))
        assert sock is not None
        try:
            assert got.hub.hub_port not in (0, taken)
        finally:
            sock.close()
    finally:
        holder.close()


def test_an_unreadable_ports_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / PORTS_FILE).write_text("{not json")
    got, sock = bind_port_zero(settings(tmp_path))
    assert sock is not None
    sock.close()
    assert got.hub.hub_port != 0
