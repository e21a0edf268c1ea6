"""Login rate limits (issue 12 item 3) that can still be walked around.

1. **Concurrent guesses are not counted in time.** ``form_login`` asks the limiter, awaits the authenticator,
   and only then records the failure; every guess sent while the first ones are still being checked passes the
   limiter. With PAM (worker thread plus a 2 s failure delay on the event loop) 20 simultaneous wrong
   passwords for one name from one address all reach PAM although ``login_rate_limit = 5``: the limit no longer
   bounds guesses per window, only guesses per round trip.
2. **Any process on the hub's machine picks its own client address.** With the default ``trusted_proxies``
   (all of loopback when a proxy is in front), a request from 127.0.0.1 to the hub's port (the
   ``JUPYTERHUB_API_URL`` every local user server is given) or from any 127.x address through hubkit-proxy has
   its ``X-Forwarded-For`` believed, so a user's notebook can guess another user's password from a fresh
   "address" every time: no 429 ever.

Fault: 1 ``hubkit/auth/login.py`` ``form_login`` with ``auth/ratelimit.py`` (count an attempt as pending before
awaiting the authenticator, e.g. reserve a slot and release it on success); 2 ``hubkit/auth/forwarded.py``
``default_trusted`` (loopback is shared with user servers on a single machine: trust the proxy by something a
user's process cannot present, or only the proxy's own address and only on its connection).
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
