"""Fixtures for the single-VM integration tests: real OS accounts, a shared-data folder, the example hub."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hubkit.testing import require
from hubkit_auth_pam.testing import OSAccounts, new_accounts

from . import uservenv
from .hubproc import (
    HubProcess,
    deep_update,
    example_config,
    free_port,
    kill_user_processes,
    read_pid,
)

PASSWORD = "Vm-t3st-pass"


def vm_requirements() -> None:
    require(os.geteuid() == 0, "the VM example runs the hub as root (PAM, servers as each user)")
    require(shutil.which("useradd") is not None, "useradd is not installed")


@pytest.fixture(scope="session")
def user_bin() -> Path:
    """bin directory of a Python every account can run, with hubkit-singleuser and JupyterLab."""
    vm_requirements()
    path, why = uservenv.user_bin()
    require(path is not None, f"no Python the test accounts can execute: {why}")
    assert path is not None
    return path


@pytest.fixture
def accounts() -> Iterator[OSAccounts]:
    vm_requirements()
    accts = new_accounts()
    try:
        yield accts
    finally:
        uids = []
        for name in accts.users:
            try:
                uids.append(pwd.getpwnam(name).pw_uid)
            except KeyError:
                pass
        kill_user_processes(uids)
        accts.cleanup()


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory every account can traverse (pytest's tmp_path is 0700 root): shared data, skel."""
    base = Path(tempfile.mkdtemp(prefix="hk-vm-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def shared_dir(world_dir: Path) -> Path:
    """The class-material folder, made by examples/vm/shared-data.sh exactly as the README says."""
    shared = world_dir / "shared"
    skel = world_dir / "skel"
    shared.mkdir()
    (shared / "welcome.txt").write_text("hello class\n")
    env = {**os.environ, "SHARED_DIR": str(shared), "SKEL_DIR": str(skel)}
    subprocess.run(
        ["bash", str(Path(__file__).resolve().parents[2] / "examples/vm/shared-data.sh")],
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return shared


@pytest.fixture
def os_groups(accounts: OSAccounts) -> tuple[str, str]:
    """(students, admins): the OS groups the test hub allows and makes admins."""
    return accounts.group("stud"), accounts.group("adm")


@pytest.fixture
def make_hub(
    tmp_path: Path, accounts: OSAccounts, shared_dir: Path, os_groups: tuple[str, str], user_bin: Path
) -> Iterator[Callable[..., HubProcess]]:
    """Build (not start) a hub from examples/vm/hubkit.toml with this machine's ports/paths/groups."""
    made: list[HubProcess] = []
    students, admins = os_groups

    def build(**overrides: Any) -> HubProcess:
        work = tmp_path / f"hub{len(made)}"
        data = work / "data"
        data.mkdir(parents=True)
        port = free_port()  # named by public_url, so chosen up front (HubProcess.start moves it if taken)
        cfg = example_config(
            hub={
                "ip": "127.0.0.1",
                "port": port,
                "hub_port": 0,  # the hub binds port 0 and reports it
                "public_url": f"http://127.0.0.1:{port}",
                "data_dir": str(data),
                "db_url": f"sqlite+aiosqlite:///{data}/hubkit.sqlite",
                "admin_users": [accounts.name("teacher")],
            },
            auth={
                "pam": {
                    "allowed_groups": [students, admins],
                    "admin_groups": [admins],
                    "useradd_groups": [students],
                    "skel_dir": str(shared_dir.parent / "skel"),
                    "failure_delay_seconds": 0.5,
                }
            },
            spawner={"local": {"shared_data_dir": str(shared_dir)}},
            proxy={"hubkit-proxy": {"api_url": "http://127.0.0.1:0"}},
        )
        deep_update(cfg, overrides)
        hub = HubProcess(config=cfg, workdir=work, user_bin=user_bin)
        made.append(hub)
        return hub

    yield build
    for hub in made:
        hub.stop()
        stop_proxy(hub)


def stop_proxy(hub: HubProcess) -> None:
    """The embedded proxy outlives the hub by design; the test ends it by the pid the plugin recorded."""
    pid = read_pid(Path(hub.config["hub"]["data_dir"]) / "hubkit-proxy.pid")
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.fixture
def student(accounts: OSAccounts, os_groups: tuple[str, str]) -> Callable[[str], str]:
    """Create a student account (in the allowed group) with PASSWORD; returns its name."""

    def make(suffix: str) -> str:
        return accounts.user(suffix, PASSWORD, groups=(os_groups[0],))

    return make
