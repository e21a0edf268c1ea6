"""Login rate limits (issue 12 item 3) that could be walked around, each now closed.

1. **Concurrent guesses were not counted in time**: ``form_login`` asked the limiter, awaited the authenticator,
   and only then recorded the failure, so every guess sent while the first ones were still being checked passed.
   Now an attempt counts as it arrives (``auth/ratelimit.py``).
2. **Any process on the hub's machine picked its own client address**: with ``trusted_proxies`` at its default
   (loopback when a proxy is in front), a request from 127.0.0.1 to the hub's port (the ``JUPYTERHUB_API_URL``
   every local user server is given), or from any 127.x address through hubkit-proxy, had its
   ``X-Forwarded-For`` believed, so a user's notebook could guess another user's password from a fresh
   "address" every time. Now hubkit-proxy marks what it sends the hub (``X-Hubkit-Forwarded``, a secret derived
   from the cookie secret, dropped from what clients send) and the hub believes forwarded headers only on marked
   requests, taking the proxy's own entry (``auth/forwarded.py``).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import hardhub
import httpx
import pytest
from hardhub import HardHub, login
from hubkit.testing import require
from probehub import page_xsrf, plugins

pytestmark = [pytest.mark.timeout(240)]


class DefaultTrustHub(HardHub):
    """The hardening hub with ``trusted_proxies`` left at its default (loopback, as the docs describe)."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config.read_text()
        self.config.write_text(text.replace('trusted_proxies = ["127.0.0.1/32"]', ""))


class PamHub(HardHub):
    """The hardening hub with real PAM in place of the dummy authenticator."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config.read_text()
        text = text.replace('[auth]\nbackend = "dummy"', '[auth]\nbackend = "pam"')
        text = text.replace(f'[auth.dummy]\npassword = "{hardhub.PASSWORD}"', "[auth.pam]\n")
        self.config.write_text(text)

    def start(self) -> HardHub:
        with plugins("proxy,pam"):
            return super().start()


@pytest.fixture(scope="module")
def pam_user() -> Iterator[str]:
    require(os.geteuid() == 0, "PAM tests create real OS accounts (root)")
    from hubkit_auth_pam.testing import OSAccounts

    accounts = OSAccounts("pgp" + secrets.token_hex(3))
    try:
        yield accounts.user("u", "Corr3ct-horse")
    finally:
        accounts.cleanup()


def test_simultaneous_wrong_passwords_are_all_counted(pam_user: str, tmp_path: Path) -> None:
    hub = PamHub(tmp_path, "sqlite:///hub.sqlite").start()
    try:
        statuses: list[int] = []
        gate = threading.Barrier(20)

        def guess(i: int) -> None:
            with hub.client("127.0.0.9") as c:
                page_xsrf(c)
                gate.wait()
                statuses.append(login(c, pam_user, f"wrong-{i}").status_code)

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        counts = Counter(statuses)
        checked = len(statuses) - counts[429]
        assert checked <= 5, (
            f"login_rate_limit = 5 but {checked} of 20 simultaneous guesses were checked: {counts}"
        )
        # the owner, from her own address, still gets in
        with hub.client("127.0.0.10") as c:
            assert login(c, pam_user, "Corr3ct-horse").status_code in (302, 303)
    finally:
        hub.stop()


def _guess_from(client: httpx.Client, xsrf: str, name: str, spoofed: str) -> int:
    form = {"username": name, "password": "wrong", "_xsrf": xsrf}
    return client.post("/hub/login", data=form, headers={"X-Forwarded-For": spoofed}).status_code


def test_a_local_process_cannot_choose_its_login_address(tmp_path: Path) -> None:
    hub = DefaultTrustHub(tmp_path, "sqlite:///hub.sqlite").start()
    try:
        results: dict[str, Counter[int]] = {}
        doors = {
            # what a user's server on the same machine reaches: the hub's API port, from 127.0.0.1
            "hub port": httpx.Client(base_url=f"http://127.0.0.1:{hub.hub_port}", timeout=30),
            # the public port, from another loopback address
            "proxy port": hub.client("127.0.0.7"),
        }
        for door, client in doors.items():
            with client:
                xsrf = page_xsrf(client)
                results[door] = Counter(
                    _guess_from(client, xsrf, f"pgvictim{door[:3]}", f"203.0.113.{i}") for i in range(12)
                )
        # login_rate_limit = 5 per (name, address): from the 6th guess on, one machine is refused
        assert all(c[429] >= 6 for c in results.values()), f"statuses per door: {results}"
        log = hub.log_text()
        assert "from 203.0.113." not in log
        assert "from 127.0.0.7" in log  # the address the proxy saw is the one counted
        # a forged mark is no mark: still counted under the real address
        with httpx.Client(base_url=f"http://127.0.0.1:{hub.hub_port}", timeout=30) as c:
            xsrf = page_xsrf(c)
            forged = {"X-Forwarded-For": "203.0.113.200", "X-Hubkit-Forwarded": "0" * 64}
            form = {"username": "pgvictimhub", "password": "wrong", "_xsrf": xsrf}
            assert c.post("/hub/login", data=form, headers=forged).status_code == 429
        # and a person at another address is not refused
        with hub.client("127.0.0.8") as c:
            page_xsrf(c)
            assert login(c, "pgvictimhub", hardhub.PASSWORD).status_code in (302, 303)
    finally:
        hub.stop()
