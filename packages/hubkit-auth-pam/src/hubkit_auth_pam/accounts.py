"""OS account facts (passwd/group via NSS) and creating accounts with ``useradd``.

Names reach ``useradd`` only after a strict whitelist check, and always after ``--``, so a hub username can
never become a command-line option.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

# What we accept at login: existing accounts may carry upper case or dots (made with --badname or by hand).
LOGIN_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}\$?$")
# What we create: Debian's default NAME_REGEX plus dots, at most 32 characters, never only digits.
NEW_NAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class AccountError(Exception):
    """Creating an OS account failed; the message says why in plain words."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[str, ...]  # names of every group the account is in, primary first


def valid_login_name(name: str) -> bool:
    return bool(LOGIN_NAME_RE.fullmatch(name))


def check_new_name(name: str) -> None:
    """Raise :class:`AccountError` unless ``name`` is safe and conventional for ``useradd``."""
    if not NEW_NAME_RE.fullmatch(name):
        raise AccountError(
            f"{name!r} cannot become an OS account: use 1-32 characters, lower-case letters, digits, "
            "'_', '-' or '.', starting with a letter or '_'"
        )


def lookup(name: str) -> Account | None:
    """The account and its groups, or ``None`` when no such account exists."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    gids = os.getgrouplist(pw.pw_name, pw.pw_gid)
    names: list[str] = []
    for gid in gids:
        try:
            gname = grp.getgrgid(gid).gr_name
        except KeyError:
            continue
        if gname not in names:
            names.append(gname)
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, tuple(names))


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def check_creatable(name: str, *, groups: tuple[str, ...] = (), skel: str = "/etc/skel") -> None:
    """Raise :class:`AccountError` when ``useradd`` could not make ``name`` as asked (checked before the hub
    stores the user, so the admin sees why): the name, root, the skeleton directory, the groups."""
    check_new_name(name)
    if os.geteuid() != 0:
        raise AccountError(f"cannot create the OS account {name!r}: the hub does not run as root")
    if not os.path.isdir(skel):
        raise AccountError(f"cannot create the OS account {name!r}: skeleton directory {skel!r} is missing")
    for g in groups:
        try:
            grp.getgrnam(g)
        except KeyError:
            raise AccountError(f"cannot add {name!r} to OS group {g!r}: no such group") from None


def create(
    name: str, *, shell: str = "/bin/bash", groups: tuple[str, ...] = (), skel: str = "/etc/skel"
) -> Account:
    """``useradd -m`` (home copied from /etc/skel). Idempotent: an existing account is returned as is."""
    check_new_name(name)
    found = lookup(name)
    if found is not None:
        return found
    check_creatable(name, groups=groups, skel=skel)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--create-home", "--skel", skel, "--shell", shell]
    if groups:
        cmd += ["--groups", ",".join(groups)]
    cmd += ["--", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AccountError(f"useradd {name!r} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    created = lookup(name)
    if created is None:
        raise AccountError(f"useradd {name!r} reported success but the account is not visible")
    return created


def shadow_expiry(name: str, *, shadow: str = "/etc/shadow", today: int | None = None) -> str | None:
    """Why the shadow entry refuses ``name``: ``"account"`` (expired account), ``"password"`` (password must
    be changed) or ``None`` (not expired, or no readable local entry).

    Debian's account stack turns pam_unix's precise code into a generic failure (``default=ignore`` then
    ``pam_deny``), so we read the reason here to tell the person what to do.
    """
    try:
        with open(shadow, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    days = int(time.time() // 86400) if today is None else today
    for line in lines:
        fields = line.split(":")
        if len(fields) < 8 or fields[0] != name:
            continue
        lastchg, maxdays, inactive, expire = (_int(fields[i]) for i in (2, 4, 6, 7))
        if expire is not None and expire >= 0 and days >= expire:
            return "account"
        if lastchg == 0:
            return "password"
        if lastchg is not None and maxdays is not None and 0 <= maxdays < 99999 and days > lastchg + maxdays:
            if inactive is not None and inactive >= 0 and days > lastchg + maxdays + inactive:
                return "account"
            return "password"
        return None
    return None


def _int(field: str) -> int | None:
    try:
        return int(field)
    except ValueError:
        return None
