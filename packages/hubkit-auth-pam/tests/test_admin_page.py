"""A hub on the real PAM plugin with account creation on: an admin (a real OS account, logged in with its
password) adds users on the admin page. A name ``useradd`` could not make is refused there, with the reason,
and nothing is stored or created; a good name becomes a hub user and an OS account."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.runtime.app import create_app
from hubkit.storage.orm import User
from hubkit.testing.plugin import make_settings
from hubkit_auth_pam import accounts
from hubkit_auth_pam import plugin as pam_plugin
from hubkit_auth_pam.testing import OSAccounts
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.root, pytest.mark.timeout(120)]
PW = "Corr3ct-horse"
BASE = "http://127.0.0.1:8000"
SAME = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def urlst_accounts(os_accounts: OSAccounts) -> Iterator[OSAccounts]:
    """The conftest's account fixture (root, useradd checked, cleanup), with this test's own name prefix."""
    os_accounts.prefix = f"urlst{secrets.token_hex(2)}"
    yield os_accounts


@pytest.fixture
async def client(hub_factory: Any, urlst_accounts: OSAccounts, tmp_path: Path) -> AsyncIterator[Any]:
    skel = tmp_path / "skel"
    skel.mkdir()
    (skel / "welcome.txt").write_text("hello\n")
    admin = urlst_accounts.user("adm", PW)
    settings = make_settings(
        tmp_path / "hub",
        auth={
            "backend": "pam",
            "pam": {"create_system_users": True, "skel_dir": str(skel), "failure_delay_seconds": 0.1},
        },
        hub={"admin_users": [admin]},
    )
    hub = await hub_factory(settings, [pam_plugin])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub)), base_url=BASE) as c:
        c.hub = hub  # type: ignore[attr-defined]
        c.admin = admin  # type: ignore[attr-defined]
        yield c


def xsrf_of(html: str) -> str:
    m = re.search(r'name="_xsrf" value="([0-9a-f]+)"', html)
    assert m, html[:500]
    return m.group(1)


async def hub_users(client: Any) -> set[str]:
    async with client.hub.db() as s:
        return set((await s.execute(select(User.name))).scalars())


async def add_on_admin_page(client: Any, names: str) -> str:
    """Submit the admin page's add-users form; returns the message the page then shows."""
    xsrf = xsrf_of((await client.get("/hub/admin")).text)
    r = await client.post(
        "/hub/admin/action", data={"_xsrf": xsrf, "action": "add_users", "names": names}, headers=SAME
    )
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"])
    m = re.search(r'<p class="alert" id="admin-message">([^<]*)</p>', page.text)
    assert page.status_code == 200 and m, page.text[:1000]
    return m.group(1).replace("&#39;", "'")


async def test_admin_page_refuses_names_useradd_cannot_make(client: Any, urlst_accounts: OSAccounts) -> None:
    page = await client.get("/hub/login")
    r = await client.post(
        "/hub/login",
        data={"username": client.admin, "password": PW, "_xsrf": xsrf_of(page.text)},
        headers=SAME,
    )
    assert r.status_code == 302, r.text  # a real PAM login
    before = await hub_users(client)
    good = urlst_accounts.name("new")
    urlst_accounts.users.append(good)  # removed afterwards even though the hub creates it

    p = urlst_accounts.prefix
    # names the hub takes (after lower-casing) but useradd would not: a digit or dash first, too long, "+"
    bad_names = (f"9{p}", f"-{p}", p + "x" * 30, f"{p}+x", "ünï")
    urlst_accounts.users.extend(bad_names)  # should one be created after all, it is removed afterwards
    for bad in bad_names:
        message = await add_on_admin_page(client, f"{good}\n{bad}")
        assert f"{bad!r} cannot become an OS account" in message, message
        assert "no user was added" in message and "use 1-32 characters" in message
        assert await hub_users(client) == before and not accounts.exists(good) and not accounts.exists(bad)

    # through the REST API it is a 400 with the same reason
    token = (
        await client.post(
            "/hub/api/users/" + client.admin + "/tokens",
            json={},
            headers={**SAME, "X-XSRFToken": xsrf_of((await client.get("/hub/admin")).text)},
        )
    ).json()["token"]
    r = await client.post(
        "/hub/api/users", json={"usernames": [f"9{p}"]}, headers={"Authorization": f"token {token}"}
    )
    assert r.status_code == 400 and f"'9{p}' cannot become an OS account" in r.json()["message"]

    # a name useradd can make: a hub user and an OS account with the skeleton's files
    assert await add_on_admin_page(client, good) == "Added 1 user(s)."
    assert await hub_users(client) == before | {good}
    made = accounts.lookup(good)
    assert made is not None and (Path(made.home) / "welcome.txt").read_text() == "hello\n"
