"""Shared course material: a read-only folder linked into every user's home on first start.

hubkit uses a *symlink* (no mount privileges needed, works in containers); the folder itself must not be
writable by the server's account, which is checked here so a misconfigured share is reported, not silent.
"""

from __future__ import annotations

import os
import stat

from .accounts import Account


def writable_by(path: str, account: Account) -> bool:
    if account.uid == 0:
        return True
    st = os.stat(path)
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid == account.gid or st.st_gid in account.groups:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def link_shared_data(shared_dir: str, home: str, link_name: str, account: Account) -> list[str]:
    """Create ``home/link_name -> shared_dir`` once. Returns warnings (never raises for a user's own files)."""
    warnings: list[str] = []
    target = os.path.abspath(shared_dir)
    if not os.path.isdir(target):
        return [f"shared_data_dir {target!r} does not exist; nothing was linked"]
    link = os.path.join(home, link_name)
    if os.path.islink(link):
        if os.readlink(link) != target:
            warnings.append(f"{link} points elsewhere ({os.readlink(link)}); left as the user made it")
    elif os.path.exists(link):
        warnings.append(f"{link} exists and is not a link; shared data not linked")
    else:
        os.symlink(target, link)
        if account.switch:
            os.lchown(link, account.uid, account.gid)
    if writable_by(target, account):
        warnings.append(
            f"shared_data_dir {target!r} is writable by {account.name!r}: make it read-only for users "
            "(e.g. owned by root, chmod -R a-w,a+rX) to keep the material safe"
        )
    return warnings
