"""Runtime hooks through the core's real dispatcher: PAM sessions around servers, OS accounts on user creation."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hubkit.errors import SpawnFailed
from hubkit.interfaces import ExitStatus, ServerSpec, UserInfo
from hubkit.plugins.hooks import Hooks
from hubkit.plugins.manager import build_plugin_manager
from hubkit.plugins.registry import HubInfo
from hubkit_auth_pam import PAMAuthenticator, PAMConfig, accounts
from hubkit_auth_pam.testing import OSAccounts

pytestmark = [pytest.mark.anyio, pytest.mark.root, pytest.mark.timeout(120)]


def spec_for(name: str, hub: HubInfo) -> ServerSpec:
    return ServerSpec(
        user=UserInfo(name=name),
        server_name="",
        server_id=1,
        url_prefix=f"/user/{name}/",
        hub_api_url=hub.hub_api_url,
        hub_id=hub.hub_id,
    )


def recorder(tmp_path: Path, log: Path) -> Path:
    """A pam_exec script that appends "<PAM_TYPE> <PAM_USER>" to ``log``."""
    script = tmp_path / "record.sh"
    script.write_text(f'#!/bin/sh\necho "$PAM_TYPE $PAM_USER" >> {log}\n')
    script.chmod(0o755)
    return script


async def started(hub: HubInfo, **options: object) -> tuple[PAMAuthenticator, Hooks]:
    """A started authenticator and the hooks of a hub that built it (as the hub does: its instance is a plugin)."""
    auth = PAMAuthenticator(PAMConfig.model_validate(options), hub)
    await auth.startup()
    pm = build_plugin_manager(allow=["pam"])
    pm.register_instance(auth, "auth:pam", "hubkit-auth-pam")
    return auth, Hooks(pm)


async def test_sessions_open_before_spawn_and_close_after_stop(
    os_accounts: OSAccounts, hub_info: HubInfo, pam_service_file: Callable[[str], str], tmp_path: Path
) -> None:
    name = os_accounts.user("sess")
    log = tmp_path / "sessions.log"
    service = pam_service_file(
        f"@include common-auth\n@include common-account\nsession required pam_exec.so {recorder(tmp_path, log)}\n"
    )
    _, hooks = await started(hub_info, service=service, open_sessions=True)
    spec = spec_for(name, hub_info)
    assert await hooks.pre_spawn(spec) == spec
    assert log.read_text().split("\n")[0] == f"open_session {name}"
    await hooks.post_stop(spec, ExitStatus(code=0))
    assert log.read_text().splitlines() == [f"open_session {name}", f"close_session {name}"]


async def test_sessions_off_by_default(
    os_accounts: OSAccounts, hub_info: HubInfo, pam_service_file: Callable[[str], str], tmp_path: Path
) -> None:
    log = tmp_path / "sessions.log"
    service = pam_service_file(f"session required pam_exec.so {recorder(tmp_path, log)}\n")
    _, hooks = await started(hub_info, service=service)
    await hooks.pre_spawn(spec_for(os_accounts.user("nos"), hub_info))
    assert not log.exists()


async def test_refused_session_fails_the_spawn(
    os_accounts: OSAccounts, hub_info: HubInfo, pam_service_file: Callable[[str], str]
) -> None:
    service = pam_service_file("session required pam_deny.so\n")
    _, hooks = await started(hub_info, service=service, open_sessions=True)
    with pytest.raises(SpawnFailed, match="could not open a PAM session") as info:
        await hooks.pre_spawn(spec_for(os_accounts.user("deny"), hub_info))
    assert info.value.reason_code == "pam-session"


@pytest.fixture
def skel() -> Iterator[Path]:
    """A skeleton directory like the VM example's: a dotfile and a link to a root-owned shared folder.

    Lives under /var/tmp (world-traversable), unlike pytest's 0700 tmp_path, so users can reach it."""
    base = Path(tempfile.mkdtemp(prefix="hk-skel-", dir="/var/tmp"))
    base.chmod(0o755)
    shared = base / "shared"
    shared.mkdir(mode=0o755)
    (shared / "syllabus.txt").write_text("week 1\n")
    sk = base / "skel"
    sk.mkdir()
    (sk / ".profile-marker").write_text("from skel\n")
    (sk / "shared").symlink_to(shared)
    yield sk
    shutil.rmtree(base)


async def test_admin_added_user_gets_os_account_from_skel(
    os_accounts: OSAccounts, hub_info: HubInfo, skel: Path
) -> None:
    stud = os_accounts.group("cls")
    _, hooks = await started(hub_info, create_system_users=True, skel_dir=str(skel), useradd_groups=[stud])
    name = os_accounts.name("new")
    os_accounts.users.append(name)  # cleaned up even though the hook creates it
    await hooks.user_created(UserInfo(name=name))
    acct = accounts.lookup(name)
    assert acct is not None and stud in acct.groups
    home = Path(acct.home)
    assert (home / ".profile-marker").read_text() == "from skel\n"
    assert os.stat(home).st_uid == acct.uid
    assert (home / "shared" / "syllabus.txt").read_text() == "week 1\n"
    # idempotent: a second event for an existing account changes nothing
    await hooks.user_created(UserInfo(name=name))
    assert accounts.lookup(name) == acct


async def test_existing_accounts_are_left_alone(
    os_accounts: OSAccounts, hub_info: HubInfo, skel: Path
) -> None:
    name = os_accounts.user("old")
    before = pwd.getpwnam(name)
    _, hooks = await started(hub_info, create_system_users=True, skel_dir=str(skel))
    await hooks.user_created(UserInfo(name=name))
    assert pwd.getpwnam(name) == before
    assert not (Path(before.pw_dir) / "shared").exists()


async def test_creation_off_by_default(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    _, hooks = await started(hub_info)
    name = os_accounts.name("off")
    await hooks.user_created(UserInfo(name=name))
    assert not accounts.exists(name)


@pytest.mark.parametrize("bad", ["-o", "--help", "Upper", "a b", "x;id", "a/b", "9" * 3, "a" * 33, "", "ünï"])
def test_bad_names_never_reach_useradd(bad: str, tmp_path: Path) -> None:
    with pytest.raises(accounts.AccountError, match="cannot become an OS account"):
        accounts.create(bad, skel=str(tmp_path))
    assert not accounts.exists(bad) or bad == ""


async def test_bad_name_reaching_user_created_is_logged_not_created(
    hub_info: HubInfo, skel: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, hooks = await started(hub_info, create_system_users=True, skel_dir=str(skel))
    await hooks.user_created(UserInfo(name="--badname"))  # broadcast: logged with the plugin's name
    assert "cannot become an OS account" in caplog.text
    assert not accounts.exists("--badname")


def test_shared_folder_is_read_only_for_users(os_accounts: OSAccounts, skel: Path) -> None:
    """What examples/vm sets up: the link is in every new home, the files are readable, not writable."""
    name = os_accounts.name("ro")
    os_accounts.users.append(name)
    acct = accounts.create(name, skel=str(skel))
    target = Path(acct.home, "shared").resolve()
    mode = os.stat(target).st_mode
    assert os.stat(target).st_uid == 0 and not mode & (stat.S_IWGRP | stat.S_IWOTH)
    runuser = shutil.which("runuser")
    assert runuser
    ok = subprocess.run(
        [runuser, "-u", name, "--", "cat", f"{acct.home}/shared/syllabus.txt"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout == "week 1\n"
    denied = subprocess.run(
        [runuser, "-u", name, "--", "touch", f"{acct.home}/shared/mine.txt"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
