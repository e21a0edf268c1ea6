"""Real OS accounts for PAM tests: created with useradd/chpasswd/groupadd, removed afterwards.

Every name starts with a per-run random prefix (``hk`` + 6 hex digits) so parallel runs never collide.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hubkit.plugins.registry import HubInfo
from hubkit.testing import require


def os_cmd(*cmd: str, stdin: str | None = None) -> None:
    """Run an account tool (useradd, chage...); fail loudly with its output."""
    subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True, timeout=60)


@dataclass
class OSAccounts:
    prefix: str
    users: list[str]
    groups: list[str]

    def name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def group(self, suffix: str) -> str:
        name = self.name(suffix)
        os_cmd("groupadd", "--", name)
        self.groups.append(name)
        return name

    def user(
        self,
        suffix: str,
        password: str | None = "Corr3ct-horse",
        *,
        groups: tuple[str, ...] = (),
        system: bool = False,
    ) -> str:
        name = self.name(suffix)
        cmd = ["useradd", "--create-home", "--shell", "/bin/bash"]
        if system:
            cmd.append("--system")
        if groups:
            cmd += ["--groups", ",".join(groups)]
        self.users.append(name)
        os_cmd(*cmd, "--", name)
        if password is not None:
            os_cmd("chpasswd", stdin=f"{name}:{password}\n")
        return name

    def cleanup(self) -> None:
        for name in reversed(self.users):
            subprocess.run(["userdel", "--remove", "--", name], capture_output=True, timeout=60, check=False)
        for name in reversed(self.groups):
            subprocess.run(["groupdel", "--", name], capture_output=True, timeout=60, check=False)


@pytest.fixture
def os_accounts() -> Iterator[OSAccounts]:
    require(os.geteuid() == 0, "PAM account tests create OS accounts and need root")
    require(shutil.which("useradd") is not None, "useradd (passwd package) is not installed")
    accts = OSAccounts(prefix=f"hk{secrets.token_hex(3)}", users=[], groups=[])
    try:
        yield accts
    finally:
        accts.cleanup()


@pytest.fixture
def hub_info(tmp_path: object) -> HubInfo:
    return HubInfo(
        hub_id=f"pamtest-{secrets.token_hex(4)}",
        data_dir=str(tmp_path),
        hub_api_url="http://127.0.0.1:8081/hub/api",
        hub_url="http://127.0.0.1:8081",
        public_url="http://127.0.0.1:8000",
        is_root=os.geteuid() == 0,
    )


@pytest.fixture
def pam_service_file() -> Iterator[Callable[[str], str]]:
    """Write a throw-away /etc/pam.d service; returns its name. Removed afterwards."""
    made: list[str] = []

    def write(body: str) -> str:
        name = f"hubkit-test-{secrets.token_hex(4)}"
        path = os.path.join("/etc/pam.d", name)
        with open(path, "w") as f:
            f.write(body)
        made.append(path)
        return name

    yield write
    for path in made:
        os.unlink(path)
