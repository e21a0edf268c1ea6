"""SQLite serves one hub process: a second ``hubkit`` on the same database file exits at once, naming the file
and PostgreSQL; once the first is killed -9 (the kernel drops its lock) a new one starts."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hubkit.testing.processes import cli_token, hub_api, start_hub_port_zero

pytestmark = [pytest.mark.timeout(120)]


def write_config(tmp: Path, name: str, db: Path) -> Path:
    config = tmp / f"{name}.toml"
    config.write_text(
        f"""
[hub]
ip = "127.0.0.1"
port = 0
data_dir = "{tmp / name}"
db_url = "sqlite:///{db}"
admin_users = ["boss"]

[spawner]
backend = "test"

[proxy]
backend = "none"
"""
    )
    return config


def test_second_hub_on_one_sqlite_file_is_refused_until_the_first_dies(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    first_cfg, second_cfg = write_config(tmp_path, "a", db), write_config(tmp_path, "b", db)
    first = second = None
    try:
        first, ports = start_hub_port_zero(first_cfg, tmp_path / "a.log", data_dir=tmp_path / "a")
        token = cli_token(first_cfg, "boss")  # a short command on the same file is not refused
        assert hub_api(ports["port"], token, "POST", "/users/u1").status_code == 201

        refused = subprocess.run(
            [sys.executable, "-m", "hubkit.cli", "-f", str(second_cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0
        assert str(db) in refused.stderr
        assert "PostgreSQL" in refused.stderr
        assert f"pid {first.pid}" in refused.stderr
        assert first.poll() is None  # the first hub is untouched
        assert hub_api(ports["port"], token, "GET", "/users/u1").status_code == 200

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second, ports2 = start_hub_port_zero(second_cfg, tmp_path / "b.log", data_dir=tmp_path / "b")
        assert hub_api(ports2["port"], token, "GET", "/users/u1").status_code == 200
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
