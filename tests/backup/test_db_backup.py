"""`hubkit db backup` while a real hub process serves writes, and `hubkit db restore` into a new data dir.

A writer creates users one after another through the REST API; a backup taken meanwhile must be a
consistent snapshot: integrity ok and exactly the first k users, with k between the counts seen before and
after the backup ran. A hub started on the restored copy serves that data (and the old API token).
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hubkit.testing import require
from hubkit.testing.processes import cli_token, hub_api, start_hub_port_zero

pytestmark = [pytest.mark.timeout(300)]
MAX_USERS = 5000  # the writer's bound in count...
MAX_SECONDS = 120  # ...and in time


def write_config(tmp: Path, name: str) -> Path:
    config = tmp / f"{name}.toml"
    config.write_text(
        f"""
[hub]
ip = "127.0.0.1"
port = 0  # the hub binds what the kernel gives it and reports it (start_hub)
data_dir = "{tmp / name}"
db_url = "sqlite:///hub.sqlite"
admin_users = ["boss"]

[spawner]
backend = "local"

[proxy]
backend = "none"
"""
    )
    return config


def start_hub(config: Path, log: Path, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A hub on port 0 (no race with other programs for a free port): its process and the port it reported."""
    proc, ports = start_hub_port_zero(config, log, data_dir=data_dir)
    return proc, ports["port"]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubkit.cli", "-f", str(config), *args], capture_output=True, text=True, timeout=120
    )


class Writer(threading.Thread):
    """Creates users w0000, w0001, ... one request at a time until stopped or bounded."""

    def __init__(self, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.port, self.token = port, token
        self.created = 0
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        with httpx.Client(timeout=30, headers={"Authorization": f"token {self.token}"}) as c:
            while not self.stop.is_set() and self.created < MAX_USERS and time.monotonic() < deadline:
                r = c.post(f"http://127.0.0.1:{self.port}/hub/api/users/w{self.created:04d}")
                if r.status_code != 201:
                    self.error = f"{r.status_code} {r.text}"
                    return
                self.created += 1


def users_in(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return sorted(r[0] for r in con.execute("SELECT name FROM users"))
    finally:
        con.close()


def test_backup_while_writing_then_restore_elsewhere(tmp_path: Path) -> None:
    config = write_config(tmp_path, "live")
    hub, port = start_hub(config, tmp_path / "live.log", tmp_path / "live")
    writer: Writer | None = None
    try:
        token = cli_token(config, "boss")
        writer = Writer(port, token)
        writer.start()
        while writer.created < 20 and writer.is_alive():
            time.sleep(0.05)
        before = writer.created
        r = cli(config, "db", "backup", str(tmp_path / "b1.sqlite"))
        after = writer.created
        assert r.returncode == 0, r.stderr
        assert "integrity ok" in r.stdout
        assert after > before, f"no write happened while the backup ran ({writer.error})"
        writer.stop.set()
        writer.join(60)
        assert writer.error is None, writer.error

        names = users_in(tmp_path / "b1.sqlite")
        written = [n for n in names if n.startswith("w")]
        k = len(written)
        assert written == [f"w{i:04d}" for i in range(k)], "the backup is not one snapshot of the writes"
        assert before <= k <= after, (before, k, after)
        assert "boss" in names
        assert (tmp_path / "b1.sqlite").stat().st_mode & 0o077 == 0  # tokens' hashes: owner only

        # a backup never overwrites a file
        again = cli(config, "db", "backup", str(tmp_path / "b1.sqlite"))
        assert again.returncode == 1 and "exists already" in again.stderr
        assert users_in(tmp_path / "b1.sqlite") == names

        # restoring over the database the running hub has open is refused, naming the process
        refused = cli(config, "db", "restore", str(tmp_path / "b1.sqlite"))
        assert refused.returncode == 1
        assert f"is open in process {hub.pid}" in refused.stderr and "stop it" in refused.stderr
        assert hub_api(port, token, "GET", "/users/boss").status_code == 200  # the live hub is untouched

        # restore into a new data dir and start a hub there: the data and the old token are there
        config2 = write_config(tmp_path, "restored")
        ok = cli(config2, "db", "restore", str(tmp_path / "b1.sqlite"))
        assert ok.returncode == 0, ok.stderr
        assert f"{k + 1} users" in ok.stdout
        hub2, port2 = start_hub(config2, tmp_path / "restored.log", tmp_path / "restored")
        try:
            listed = hub_api(port2, token, "GET", "/users")
            assert listed.status_code == 200, listed.text
            assert sorted(u["name"] for u in listed.json()) == names
            # a second restore while this hub runs is refused too
            assert cli(config2, "db", "restore", str(tmp_path / "b1.sqlite")).returncode == 1
        finally:
            hub2.terminate()
            hub2.wait(30)
        # once it is stopped, restoring again keeps the replaced database beside it
        redo = cli(config2, "db", "restore", str(tmp_path / "b1.sqlite"))
        assert redo.returncode == 0, redo.stderr
        kept = list((tmp_path / "restored").glob("hub.sqlite.before-restore-*"))
        assert len([p for p in kept if not p.name.endswith(("-wal", "-shm"))]) == 1
    finally:
        if writer is not None:
            writer.stop.set()
        hub.terminate()
        hub.wait(30)


def test_restore_refuses_what_is_not_a_hubkit_backup(tmp_path: Path) -> None:
    config = write_config(tmp_path, "hub")
    assert cli(config, "db", "upgrade").returncode == 0
    db = tmp_path / "hub" / "hub.sqlite"
    before = db.read_bytes()
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n" * 100)
    r = cli(config, "db", "restore", str(junk))
    assert r.returncode == 1 and "not a readable SQLite database" in r.stderr
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    r = cli(config, "db", "restore", str(other))
    assert r.returncode == 1 and "not a hubkit database" in r.stderr
    r = cli(config, "db", "restore", str(tmp_path / "missing.sqlite"))
    assert r.returncode == 1 and "no backup file" in r.stderr
    assert db.read_bytes() == before  # nothing was touched


def test_postgres_is_refused_with_a_pointer_to_pg_dump(tmp_path: Path) -> None:
    config = write_config(tmp_path, "hub")
    url = "postgresql://hubkit@127.0.0.1:1/hubkit"  # never connected to: refused before any I/O
    r = cli(config, "db", "backup", str(tmp_path / "x"), "--db-url", url)
    assert r.returncode == 1 and "pg_dump" in r.stderr
    r = cli(config, "db", "restore", str(tmp_path / "x"), "--db-url", url)
    assert r.returncode == 1 and "pg_restore" in r.stderr
    assert not (tmp_path / "x").exists()



VM = Path(__file__).resolve().parents[2] / "examples" / "vm"


def test_vm_backup_units_verify_and_their_commands_work(tmp_path: Path) -> None:
    """examples/vm/hubkit-backup.{service,timer}: systemd accepts them, and the unit's own command lines (paths
    pointed at this machine) back a hub's database up and prune to the newest 14 copies."""
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze missing (apt-get install systemd)")
    config = write_config(tmp_path, "hub")
    backups = tmp_path / "backups"
    local = (
        (VM / "hubkit-backup.service")
        .read_text()
        .replace("/opt/hubkit/venv/bin/hubkit", str(Path(sys.executable).parent / "hubkit"))
        .replace("/etc/hubkit/hubkit.toml", str(config))
        .replace("/var/backups/hubkit", str(backups))
        .replace("/var/lib/hubkit", str(tmp_path))
    )
    (tmp_path / "hubkit-backup.service").write_text(local)
    shutil.copy(VM / "hubkit-backup.timer", tmp_path / "hubkit-backup.timer")
    for unit in ("hubkit-backup.service", "hubkit-backup.timer"):
        proc = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert [line for line in proc.stderr.splitlines() if "hubkit-backup" in line] == []

    service = configparser.ConfigParser(interpolation=None)
    service.read_string(local)
    run = {key: shlex.split(service["Service"][key]) for key in ("ExecStartPre", "ExecStart", "ExecStartPost")}
    assert cli(config, "db", "upgrade").returncode == 0
    subprocess.run(run["ExecStartPre"], check=True, timeout=60)
    assert oct(backups.stat().st_mode & 0o777) == "0o700"
    for i in range(15):  # older copies from earlier nights
        old = backups / f"hubkit-202601{i + 1:02d}T031500Z.sqlite"
        old.write_bytes(b"")
        os.utime(old, (1_700_000_000 + i * 86400,) * 2)
    for key in ("ExecStart", "ExecStartPost"):
        r = subprocess.run(run[key], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 0, (key, r.stdout, r.stderr)
    kept = sorted(backups.glob("hubkit-*.sqlite"), key=lambda p: p.stat().st_mtime)
    assert len(kept) == 14
    assert not (backups / "hubkit-20260101T031500Z.sqlite").exists()  # the two oldest went
    assert not (backups / "hubkit-20260102T031500Z.sqlite").exists()
    users_in(kept[-1])  # the new copy: an intact database
