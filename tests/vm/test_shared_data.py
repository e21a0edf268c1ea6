"""Class material: every new home has ~/shared, readable and not writable by the user."""

from __future__ import annotations

import pwd
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hubkit_auth_pam.testing import OSAccounts

from .conftest import PASSWORD
from .hubapi import api, start_server, user_token
from .hubproc import HubProcess, running_hub

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]


def as_user(name: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", name, "--", *cmd], capture_output=True, text=True, timeout=30, check=False
    )


def assert_shared_read_only(name: str, shared: Path) -> None:
    home = Path(pwd.getpwnam(name).pw_dir)
    link = home / "shared"
    assert link.is_symlink() and link.resolve() == shared.resolve(), f"{link} should link to {shared}"
    read = as_user(name, "cat", str(link / "welcome.txt"))
    assert read.returncode == 0 and read.stdout == "hello class\n", read.stderr
    for attempt in (["touch", str(link / "mine.txt")], ["rm", "-f", str(link / "welcome.txt")]):
        denied = as_user(name, *attempt)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, (attempt, denied)
    assert (shared / "welcome.txt").read_text() == "hello class\n"


def test_user_added_on_admin_page_gets_account_home_and_shared_folder(
    make_hub: Callable[..., HubProcess],
    accounts: OSAccounts,
    os_groups: tuple[str, str],
    shared_dir: Path,
) -> None:
    students, admins = os_groups
    teacher = accounts.user("teacher", PASSWORD, groups=(admins,))  # named in [hub] admin_users
    newbie = accounts.name("newbie")
    accounts.users.append(newbie)  # the hub creates it; the fixture removes it
    hub = make_hub()
    with running_hub(hub):
        with api(hub, user_token(hub, teacher)) as c:
            r = c.post(f"/users/{newbie}")
            assert r.status_code == 201, r.text
            # a hub name that is no safe OS name: useradd is never called with it
            bad = c.post("/users/-o")
            # refused with the reason (the PAM plugin's check of new names), nothing stored
            assert bad.status_code == 400 and "'-o' cannot become an OS account" in bad.text, bad.text
            assert c.get("/users/-o").status_code == 404
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                account = pwd.getpwnam(newbie)
                break
            except KeyError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"no OS account for {newbie}:\n{hub.log()[-3000:]}")
        assert subprocess.run(["id", "--", "-o"], capture_output=True, check=False).returncode != 0
        assert Path(account.pw_dir).is_dir() and Path(account.pw_dir).stat().st_uid == account.pw_uid
        groups = subprocess.run(
            ["id", "-nG", newbie], capture_output=True, text=True, check=True
        ).stdout.split()
        assert students in groups
        assert_shared_read_only(newbie, shared_dir)

        # the admin gives the account a password (README); the user can then log in and start a server
        subprocess.run(["chpasswd"], input=f"{newbie}:{PASSWORD}\n", text=True, check=True, timeout=30)
        start_server(hub, newbie, user_token(hub, newbie))
        assert_shared_read_only(newbie, shared_dir)


def test_existing_account_gets_the_link_on_first_server_start(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str], shared_dir: Path
) -> None:
    """Homes made before the skeleton had the link get it from [spawner.local] shared_data_dir."""
    hana = student("hana")
    assert not (Path(pwd.getpwnam(hana).pw_dir) / "shared").exists()
    hub = make_hub()
    with running_hub(hub):
        start_server(hub, hana, user_token(hub, hana))
    assert_shared_read_only(hana, shared_dir)
