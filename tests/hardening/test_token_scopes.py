"""Issue 12 item 1: a token can never mint a token (or a service) more powerful than itself.

The escalations found from outside: a token holding only ``tokens!user=esc1`` minted, with an empty body or
``inherit``, a token that could start servers; an admin's ``tokens!user=boss`` token minted ``admin:users``.
"""

from __future__ import annotations

import pytest
from hardhub import HardHub

pytestmark = [pytest.mark.timeout(180)]


def _mint(hub: HardHub, token: str, owner: str, body: object | None) -> tuple[int, dict]:
    r = hub.api("POST", f"/users/{owner}/tokens", token, **({} if body is None else {"json": body}))
    return r.status_code, (r.json() if r.content else {})


def _can_start(hub: HardHub, token: str, user: str) -> int:
    return hub.api("POST", f"/users/{user}/server", token).status_code


def _narrow_token(hub: HardHub, boss: str, user: str, scopes: list[str]) -> str:
    """A token with exactly ``scopes``, minted by an unrestricted admin (allowed: the admin holds them)."""
    status, body = _mint(hub, boss, user, {"scopes": scopes})
    assert status == 201, body
    return str(body["token"])


@pytest.mark.parametrize("body", [None, {}, {"scopes": ["inherit"]}, {"roles": ["token"]}])
def test_token_holding_only_tokens_scope_cannot_mint_a_stronger_one(
    hub: HardHub, boss: str, body: object
) -> None:
    user = f"esc{abs(hash(str(body))) % 10_000}"
    hub.api("POST", f"/users/{user}", boss)
    narrow = _narrow_token(hub, boss, user, [f"tokens!user={user}"])
    assert _can_start(hub, narrow, user) == 403
    status, minted = _mint(hub, narrow, user, body)
    assert status == 201, minted
    # the new token holds what its maker held, not what its owner holds
    assert set(minted["scopes"]) <= {f"tokens!user={user}", f"read:tokens!user={user}"}, minted["scopes"]
    new = minted["token"]
    assert _can_start(hub, new, user) == 403
    assert hub.api("GET", f"/users/{user}", new).status_code == 403
    # and it can itself mint nothing stronger either
    status, second = _mint(hub, new, user, None)
    assert status == 201 and _can_start(hub, second["token"], user) == 403


def test_explicit_scopes_beyond_the_calling_token_are_refused(hub: HardHub, boss: str) -> None:
    hub.api("POST", "/users/esc2", boss)
    narrow = _narrow_token(hub, boss, "esc2", ["tokens!user=esc2"])
    for scopes in (["servers!user=esc2"], ["self"], ["read:users!user=esc2"]):
        status, body = _mint(hub, narrow, "esc2", {"scopes": scopes})
        assert status == 403, (scopes, body)
    status, body = _mint(hub, narrow, "esc2", {"roles": ["user"]})
    assert status == 403, body
    # asking for what the owner does not hold at all stays a 400
    status, body = _mint(hub, boss, "esc2", {"scopes": ["admin:users"]})
    assert status == 400, body


def test_an_admins_narrow_token_cannot_mint_admin_power(hub: HardHub, boss: str) -> None:
    narrow = _narrow_token(hub, boss, "boss", ["tokens!user=boss"])
    assert hub.api("GET", "/users", narrow).status_code == 403
    status, body = _mint(hub, narrow, "boss", {"scopes": ["admin:users"]})
    assert status == 403, body
    for inherit in (None, {"scopes": ["inherit"]}):
        status, body = _mint(hub, narrow, "boss", inherit)
        assert status == 201
        assert hub.api("GET", "/users", body["token"]).status_code == 403
        assert hub.api("POST", "/users/esc-made-by-narrow", body["token"]).status_code == 403
    # the narrow token cannot mint for other users either (it holds tokens only for boss)
    hub.api("POST", "/users/esc3", boss)
    status, body = _mint(hub, narrow, "esc3", None)
    assert status in (403, 404), body


def test_an_unrestricted_caller_still_gets_inherit(hub: HardHub, boss: str) -> None:
    """The owner's own full power (here: an admin token from the CLI) keeps JupyterHub's ``inherit``."""
    status, body = _mint(hub, boss, "boss", None)
    assert status == 201 and body["scopes"] == ["inherit"]
    assert hub.api("GET", "/users", body["token"]).status_code == 200


def test_a_service_cannot_be_created_with_more_than_the_caller_holds(hub: HardHub, boss: str) -> None:
    hub.api("POST", "/users/svcmaker", boss)
    narrow = _narrow_token(hub, boss, "boss", ["admin:services"])
    r = hub.api("POST", "/services/sneaky", narrow, json={"admin": True})
    assert r.status_code == 403, r.text
    r = hub.api("POST", "/services/sneaky2", narrow, json={"scopes": ["admin:users"]})
    assert r.status_code == 403, r.text
    r = hub.api("POST", "/services/fine", narrow, json={"scopes": ["list:services"]})
    assert r.status_code == 201, r.text
