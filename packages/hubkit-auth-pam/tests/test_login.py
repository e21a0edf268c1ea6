"""Login outcomes against real OS accounts and the Debian ``login`` PAM service."""

from __future__ import annotations

from typing import Any

import pytest
from hubkit.errors import AuthFailed
from hubkit.interfaces import AuthResult, Credentials, UserInfo
from hubkit.plugins.registry import HubInfo
from hubkit_auth_pam import PAMAuthenticator, PAMConfig
from hubkit_auth_pam import policy as msg
from hubkit_auth_pam.testing import OSAccounts, os_cmd

pytestmark = [pytest.mark.anyio, pytest.mark.root, pytest.mark.timeout(120)]

PW = "Corr3ct-horse"


async def make_auth(hub_info: HubInfo, **options: Any) -> PAMAuthenticator:
    options.setdefault("failure_delay_seconds", 0.2)
    auth = PAMAuthenticator(PAMConfig(**options), hub_info)
    await auth.startup()
    return auth


async def login(auth: PAMAuthenticator, name: str, password: str = PW) -> AuthResult:
    result = await auth.authenticate(Credentials(username=name, password=password, remote_addr="127.0.0.1"))
    assert result is not None
    return result


async def refused(auth: PAMAuthenticator, name: str, password: str = PW) -> str:
    with pytest.raises(AuthFailed) as info:
        await auth.authenticate(Credentials(username=name, password=password))
    return str(info.value)


async def test_right_password(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("ok")
    result = await login(await make_auth(hub_info), name)
    assert result.name == name
    assert result.admin is None
    assert result.user_info is not None
    assert result.user_info["home"] == f"/home/{name}"
    assert result.user_info["uid"] >= 1000


async def test_wrong_password_and_unknown_user_read_the_same(
    os_accounts: OSAccounts, hub_info: HubInfo
) -> None:
    name = os_accounts.user("wp")
    auth = await make_auth(hub_info)
    wrong = await refused(auth, name, "not-the-password")
    unknown = await refused(auth, os_accounts.name("nobody"), PW)
    assert wrong == unknown == msg.BAD_CREDENTIALS


async def test_empty_password_refused_even_for_passwordless_account(
    os_accounts: OSAccounts, hub_info: HubInfo
) -> None:
    name = os_accounts.user("nopw")
    os_cmd("passwd", "--delete", name)  # nullok would admit ""
    assert await refused(await make_auth(hub_info), name, "") == msg.BAD_CREDENTIALS


async def test_locked_account_refused_generically(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("lock")
    auth = await make_auth(hub_info)
    await login(auth, name)
    os_cmd("usermod", "--lock", name)
    # The right password no longer matches; saying "locked" would confirm the account exists.
    assert await refused(auth, name) == msg.BAD_CREDENTIALS


async def test_expired_account_refused_with_its_reason(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("exp")
    os_cmd("chage", "-E", "0", name)
    auth = await make_auth(hub_info)
    assert await refused(auth, name) == msg.ACCOUNT_EXPIRED
    # without account management the password alone would pass: the option really does the check
    lax = await make_auth(hub_info, check_account=False)
    assert (await login(lax, name)).name == name


async def test_expired_password_refused_with_its_reason(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("pwexp")
    os_cmd("chage", "-d", "0", name)
    assert await refused(await make_auth(hub_info), name) == msg.PASSWORD_EXPIRED


async def test_group_allow_list(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    students = os_accounts.group("stud")
    inside = os_accounts.user("in", groups=(students,))
    outside = os_accounts.user("out")
    auth = await make_auth(hub_info, allowed_groups=[students])
    assert (await login(auth, inside)).name == inside
    assert await refused(auth, outside) == msg.NOT_ALLOWED
    # a wrong password outside the group still reads like any wrong password
    assert await refused(auth, outside, "nope") == msg.BAD_CREDENTIALS


async def test_primary_group_counts_for_allow_list(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("prim")  # useradd made a personal group of the same name, as primary group
    auth = await make_auth(hub_info, allowed_groups=[name])
    assert (await login(auth, name)).name == name


async def test_allowed_users(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    a, b = os_accounts.user("a"), os_accounts.user("b")
    auth = await make_auth(hub_info, allowed_users=[a])
    assert (await login(auth, a)).name == a
    assert await refused(auth, b) == msg.NOT_ALLOWED


async def test_admin_group_and_admin_users(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    admins = os_accounts.group("adm")
    boss = os_accounts.user("boss", groups=(admins,))
    named = os_accounts.user("named")
    plain = os_accounts.user("plain")
    auth = await make_auth(hub_info, admin_groups=[admins], admin_users=[named])
    assert (await login(auth, boss)).admin is True
    assert (await login(auth, named)).admin is True
    assert (await login(auth, plain)).admin is None  # no opinion: the hub keeps what it has


async def test_blocked_user(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    admins = os_accounts.group("adm")
    name = os_accounts.user("blk", groups=(admins,))
    auth = await make_auth(hub_info, blocked_users=[name], admin_groups=[admins], allowed_users=[name])
    assert await refused(auth, name) == msg.NOT_ALLOWED  # blocked wins over allowed and admin


async def test_system_accounts_cannot_log_in(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("sys", system=True)
    assert await refused(await make_auth(hub_info), name) == msg.NOT_ALLOWED
    assert (await login(await make_auth(hub_info, min_uid=0), name)).name == name


async def test_names_with_dots_and_dashes(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user(".dot-dash_x")
    result = await login(await make_auth(hub_info), f"  {name}\t")
    assert result.name == name


async def test_upper_case_name_normalized(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("_mixed")
    typed = name.upper()
    strict = await make_auth(hub_info)
    assert await refused(strict, typed) == msg.BAD_CREDENTIALS  # no such account as typed
    lower = await make_auth(hub_info, lowercase_usernames=True)
    assert (await login(lower, typed)).name == name


@pytest.mark.parametrize("typed", ["-rf", "a b", "x;id", "../etc", "", "a" * 80, "root\x00x", "ünï"])
async def test_unusable_names_refused_plainly(hub_info: HubInfo, typed: str) -> None:
    auth = await make_auth(hub_info, failure_delay_seconds=0)
    with pytest.raises(AuthFailed, match="Invalid username or password"):
        await auth.authenticate(Credentials(username=typed, password=PW))


async def test_refresh_user_follows_account_changes(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    name = os_accounts.user("refr")
    auth = await make_auth(hub_info)
    user = UserInfo(name=name)
    assert await auth.refresh_user(user, None) is True
    os_cmd("chage", "-E", "0", name)
    assert await auth.refresh_user(user, None) is False
    assert await auth.refresh_user(UserInfo(name=os_accounts.name("gone")), None) is False
    blocked = await make_auth(hub_info, blocked_users=[name], check_account=False)
    assert await blocked.refresh_user(user, None) is False
