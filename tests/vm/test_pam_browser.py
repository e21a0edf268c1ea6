"""Two real OS users log in through PAM in Chromium; each kernel runs as that user; neither reaches the other."""

from __future__ import annotations

import pwd
import re
from collections.abc import Callable

import httpx
import pytest
from hubkit_auth_pam.testing import OSAccounts, os_cmd

from .browser import chromium, login, login_error, new_page, run_cell, start_lab
from .conftest import PASSWORD
from .hubproc import HubProcess, running_hub

pytestmark = [pytest.mark.root, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(400)]

WHOAMI = "import os, pwd; print('WHO', os.getuid(), pwd.getpwuid(os.getuid()).pw_name, os.path.expanduser('~'), os.getcwd())"


def test_two_users_each_get_their_own_lab(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str]
) -> None:
    alice, bob = student("alice"), student("bob")
    with running_hub(make_hub()) as hub, chromium() as browser:
        pages = {}
        for name in (alice, bob):
            page = new_page(browser)
            login(page, hub.url, name, PASSWORD)
            start_lab(page, hub.url, name)
            pages[name] = page

        for name, page in pages.items():
            pw = pwd.getpwnam(name)
            out = run_cell(page, WHOAMI, expect="WHO")
            assert re.search(
                rf"WHO {pw.pw_uid} {re.escape(name)} {re.escape(pw.pw_dir)} {re.escape(pw.pw_dir)}", out
            ), out

        # alice's browser session cannot open bob's server, neither the page nor its API
        for me, other in ((alice, bob), (bob, alice)):
            page = pages[me]
            resp = page.goto(f"{hub.url}/user/{other}/lab")
            assert resp is not None
            assert resp.status == 403, (resp.status, page.url)
            assert ".jp-LauncherCard" not in page.content()
            api = page.request.get(f"{hub.url}/user/{other}/api/contents")
            assert api.status in (401, 403), api.status
            # while her own API answers
            mine = page.request.get(f"{hub.url}/user/{me}/api/contents")
            assert mine.status == 200


def test_refusals_in_the_browser(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str], accounts: OSAccounts
) -> None:
    """Each refusal reaches the login page with its message; none says whether an account exists."""
    carol, old, locked = student("carol"), student("old"), student("locked")
    os_cmd("chage", "-E", "0", old)
    os_cmd("usermod", "--lock", locked)
    outsider = accounts.user("outs", PASSWORD)  # a real account, but not in an allowed group
    with running_hub(make_hub()) as hub, chromium() as browser:
        page = new_page(browser)
        shown = {}
        for case, name, password in [
            ("wrong", carol, "wrong-password"),
            ("unknown", accounts.name("nosuch"), PASSWORD),
            ("locked", locked, PASSWORD),
            ("expired", old, PASSWORD),
            ("outsider", outsider, PASSWORD),
        ]:
            login(page, hub.url, name, password)
            assert "/hub/login" in page.url, (case, page.url)
            shown[case] = login_error(page)
        generic = "Invalid username or password."
        assert generic in shown["wrong"] and generic in shown["unknown"] and generic in shown["locked"], shown
        assert "account has expired" in shown["expired"], shown
        assert "not allowed" in shown["outsider"], shown
        login(page, hub.url, carol, PASSWORD)  # and the right password still works after all that
        assert "/hub/login" not in page.url


def test_login_rate_limit_applies_to_pam(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str]
) -> None:
    dave = student("dave")
    hub = make_hub(hub={"login_rate_limit": 3, "login_rate_window_seconds": 60})
    with running_hub(hub):
        c = httpx.Client(base_url=hub.url, timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', c.get("/hub/login").text)
        assert xsrf
        codes = []
        for i in range(4):
            r = c.post("/hub/login", data={"_xsrf": xsrf.group(1), "username": dave, "password": f"bad{i}"})
            codes.append(r.status_code)
        r = c.post("/hub/login", data={"_xsrf": xsrf.group(1), "username": dave, "password": PASSWORD})
        assert codes[:3] == [403, 403, 403] and codes[3] == 429, codes
        assert r.status_code == 429  # even the right password waits out the window
