"""A person whose identity provider reports a group name the hub's name rules refuse cannot log in at all.

Issue 12's name rules made ``check_name`` refuse Unicode spaces, format characters and compatibility characters;
the OAuth plugin's ``hub_group_name`` only replaces ASCII controls and URL metacharacters, and ``auth/login.py``
``complete`` calls ``check_name`` on every group and lets ``InvalidName`` end the whole login (an error page).
Real directories have such groups: a no-break space in a display name, half-width katakana (``ｶﾀｶﾅ``) or
full-width letters in Japanese organisations, a ligature pasted from a document. The person is locked out by a
group the hub does not even use.

Run against the real OpenID Connect provider of ``tests/oauth`` (panva's oidc-provider on node).

Fault: ``hubkit_oauth/policy.py`` ``hub_group_name`` (normalise NFKC and drop what ``check_name`` refuses) and/or
``hubkit/auth/login.py`` ``complete`` (skip, and log, a group whose name cannot be used instead of failing).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hardhub import HardHub
from hubkit.testing import require
from probehub import plugins

sys.path.append(str(Path(__file__).parent.parent / "oauth"))  # the real OP harness
from oauth_helpers import ACCOUNTS, CLIENT_ID, CLIENT_SECRET, OP_MODULE, RealOP, browse, new_key

pytestmark = [pytest.mark.timeout(240)]


class OIDCHub(HardHub):
    """The hardening hub logging in through a real OpenID Connect provider."""

    issuer = ""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config.read_text()
        text = text.replace('[auth]\nbackend = "dummy"', '[auth]\nbackend = "oidc"')
        oidc = (
            f'[auth.oidc]\nissuer = "{self.issuer}"\nclient_id = "{CLIENT_ID}"\nclient_secret = "{CLIENT_SECRET}"\n'
            'scopes = ["openid", "profile", "email", "groups"]\nallowed_groups = ["staff"]\n'
        )
        self.config.write_text(text.replace('[auth.dummy]\npassword = "correct horse"\n', oidc))

    def start(self) -> HardHub:
        with plugins("proxy,oauth"):
            return super().start()


@pytest.fixture(scope="module")
def oidc_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OIDCHub, RealOP]]:
    require(shutil.which("node") is not None, "node is not installed")
    require(OP_MODULE.exists(), "oidc-provider is not installed: run .ci/setup/oauth.sh")
    tmp = tmp_path_factory.mktemp("probe-oidc")
    hub = OIDCHub(tmp / "hub", "sqlite:///hub.sqlite")
    (tmp / "op").mkdir()
    # Both bind port 0, and each must name the other: the provider starts first (its issuer is known once it
    # runs), then the hub, then the provider restarts on its port with the hub's callback URLs.
    op = RealOP(workdir=tmp / "op", redirect_uris=["http://127.0.0.1/pending"], post_logout_uris=[],
                keys=[new_key("key-1")])
    try:
        op.start()
        hub.issuer = op.issuer
        hub.start()
        op.redirect_uris = [f"{hub.url}/hub/oauth_callback"]
        op.post_logout_uris = [f"{hub.url}/hub/login"]
        op.restart(op.keys)
        yield hub, op
    finally:
        op.stop()
        hub.stop()


def _set_groups(op: RealOP, login: str, groups: list[str]) -> None:
    claims = {**ACCOUNTS[login], "groups": groups}
    r = httpx.post(f"{op.issuer}/__test/accounts/{login}", content=json.dumps(claims), timeout=10)
    assert r.status_code == 204, r.text


async def _login(hub: OIDCHub, login: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as browser:
        return await browse(
            browser, f"{hub.url}/hub/oauth_login?next=/hub/home", login=login, until=f"{hub.url}/hub/home"
        )


@pytest.mark.parametrize(
    "odd_group",
    ["Team\u00a0A", "\uff76\uff80\uff76\uff85", "\ufb01nance", "\uff33ales"],
    ids=["no-break space", "half-width katakana", "ligature", "full-width letter"],
)
def test_an_unusable_provider_group_does_not_lock_the_person_out(
    oidc_hub: tuple[OIDCHub, RealOP], odd_group: str
) -> None:
    hub, op = oidc_hub
    _set_groups(op, "bob", ["staff"])
    ok = asyncio.run(_login(hub, "bob"))
    assert ok.is_redirect, f"control login failed: {ok.status_code} {ok.text[:300]}"
    _set_groups(op, "bob", ["staff", odd_group])
    r = asyncio.run(_login(hub, "bob"))
    message = re.findall(r"<p[^>]*>([^<]*)</p>", r.text)
    assert r.is_redirect, f"login refused because of group {odd_group!r}: {r.status_code} {message}"
