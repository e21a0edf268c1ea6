"""Pages accept an API token (``Authorization`` header) as a login, but do not check its scopes.

* ``/hub/admin/action`` only asks for ``admin-ui`` (the scope that opens the admin *page*) and then performs every
  admin action: a token an admin minted with nothing but ``admin-ui`` (say, for a read-only dashboard) makes any
  user an admin, creates admins, renames and deletes users, revokes everyone's tokens.
* ``/hub/token`` mints a token for any token at all, even one without the ``tokens`` scope the API demands (403
  there), and with no expiry: a 60-second token, or an OAuth token that logout revokes, becomes a permanent one.
  ``/hub/token/revoke`` likewise deletes the owner's tokens without ``tokens``.

Fault: ``hubkit/web/pages/admin.py`` (``_admin`` checks ``admin-ui`` only; ``_do`` checks nothing) and
``hubkit/web/pages/tokens.py`` (``token_create``/``token_revoke`` check no scope), via
``pages/common.require_login`` treating any token identity as a full login.
"""

from __future__ import annotations

import pytest
from hardhub import HardHub
from probehub import mint, page_xsrf, token_ids, user_model

pytestmark = [pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def boss(sqlite_hub: HardHub) -> str:
    return sqlite_hub.token("boss")


def test_an_admin_ui_only_token_cannot_make_anyone_admin(sqlite_hub: HardHub, boss: str) -> None:
    hub = sqlite_hub
    assert hub.api("POST", "/users/pgmallory", boss).status_code == 201
    ui_only = mint(hub, boss, "boss", scopes=["admin-ui"])["token"]
    # the token really is narrow: the API refuses it every admin action
    assert hub.api("PATCH", "/users/pgmallory", ui_only, json={"admin": True}).status_code == 403
    assert hub.api("POST", "/users/pgnewadmin", ui_only).status_code == 403
    headers = {"Authorization": f"token {ui_only}"}
    with hub.client() as c:
        xsrf = page_xsrf(c)
        c.post(
            "/hub/admin/action",
            data={"action": "set_admin", "user": "pgmallory", "_xsrf": xsrf},
            headers=headers,
        )
        c.post(
            "/hub/admin/action",
            data={"action": "add_users", "names": "pgnewadmin", "admin": "on", "_xsrf": xsrf},
            headers=headers,
        )
    assert user_model(hub, boss, "pgmallory")["admin"] is False, "an admin-ui-only token made a user admin"
    assert hub.api("GET", "/users/pgnewadmin", boss).status_code == 404, (
        "an admin-ui-only token created an admin"
    )


def test_the_token_page_needs_the_tokens_scope_as_the_api_does(sqlite_hub: HardHub, boss: str) -> None:
    hub = sqlite_hub
    assert hub.api("POST", "/users/pgtina", boss).status_code == 201
    keep = mint(hub, boss, "pgtina", note="keep")["id"]
    short = mint(hub, boss, "pgtina", scopes=["read:users:name!user=pgtina"], expires_in=60)
    assert hub.api("POST", "/users/pgtina/tokens", short["token"], json={}).status_code == 403  # API: no
    before = token_ids(hub, boss, "pgtina")
    headers = {"Authorization": f"token {short['token']}"}
    with hub.client() as c:
        xsrf = page_xsrf(c)
        c.post("/hub/token", data={"note": "forever", "expires_in": "", "_xsrf": xsrf}, headers=headers)
        c.post("/hub/token/revoke", data={"token_id": keep[1:], "_xsrf": xsrf}, headers=headers)
    after = token_ids(hub, boss, "pgtina")
    assert after <= before, f"a token without the tokens scope minted {sorted(after - before)} on /hub/token"
    assert keep in after, "a token without the tokens scope revoked another token on /hub/token/revoke"
