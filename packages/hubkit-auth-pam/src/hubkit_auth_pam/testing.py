"""Real OS accounts for tests of PAM and of servers that run as users (also used by tests/vm).

Accounts and groups are made with useradd/chpasswd/groupadd and removed by :meth:`OSAccounts.cleanup`. Every
name starts with a per-run random prefix (``hk`` + 6 hex digits) so parallel runs never collide.
"""

from __future__ import annotations

import pwd
import secrets
import subprocess
import time
from dataclasses import dataclass, field


def os_cmd(*cmd: str, stdin: str | None = None) -> None:
    """Run an account tool (useradd, chage...); fail loudly with its output."""
    subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True, timeout=60)


@dataclass
class OSAccounts:
    prefix: str
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

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

    def cleanup(self, *, wait: float = 15.0) -> None:
        """Remove accounts and groups. ``userdel`` refuses while the account still has processes (servers
        just killed take a moment to go), so each removal is retried for up to ``wait`` seconds."""
        for name in reversed(self.users):
            deadline = time.monotonic() + wait
            while True:
                subprocess.run(
                    ["userdel", "--remove", "--", name], capture_output=True, timeout=60, check=False
                )
                if not _exists(name) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            if _exists(name):
                raise RuntimeError(f"could not remove test account {name!r} (processes still running?)")
        for name in reversed(self.groups):
            subprocess.run(["groupdel", "--", name], capture_output=True, timeout=60, check=False)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def new_accounts() -> OSAccounts:
    return OSAccounts(prefix=f"hk{secrets.token_hex(3)}")
