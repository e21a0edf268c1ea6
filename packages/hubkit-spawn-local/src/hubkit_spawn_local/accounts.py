"""Which OS identity a server runs as: the hub's own, or (as root) the user's account."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from hubkit.errors import SpawnFailed


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[int, ...] = ()
    switch: bool = False  # True: drop privileges to uid/gid in the child


def own_account() -> Account:
    uid = os.getuid()
    try:
        pw = pwd.getpwuid(uid)
        return Account(
            pw.pw_name, uid, os.getgid(), os.environ.get("HOME") or pw.pw_dir, pw.pw_shell or "/bin/sh"
        )
    except KeyError:
        return Account(str(uid), uid, os.getgid(), os.environ.get("HOME", "/"), "/bin/sh")


def user_account(name: str) -> Account:
    """The OS account for hub user ``name``; a missing account is a spawn failure a person can act on."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise SpawnFailed(
            f"there is no OS account named {name!r} on this machine; create it (e.g. `useradd -m {name}`) "
            "or turn off [spawner.local] run_as_user",
            reason_code="no-such-os-user",
        ) from None
    groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell or "/bin/sh", groups, switch=True)
