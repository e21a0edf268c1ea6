"""Issue 12 item 4: one person, one name. Names are NFC-normalised and lower-cased, invisible and look-alike
characters are refused, so ``admin``, ``ADMIN``, full-width ``admin``, ``admin\\u200b`` can never be separate accounts."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hardhub import PASSWORD, HardHub, login

pytestmark = [pytest.mark.timeout(180)]

REFUSED = [
    "nb\u00a0sp",  # no-break space
    "ideo\u3000space",  # ideographic space
    "line\u2028sep",
    "para\u2029sep",
    "zero\u200bwidth",
    "\ufeffbom",
    "rtl\u202eoverride",
    "ctl\u0007bell",
    "priv\ue000ate",
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48",  # compatibility forms of ASCII letters
    "liga\ufb01ture",  # the "fi" ligature
    "super\u00b2",
    "repl\ufffdchar",
]


@pytest.mark.parametrize("name", REFUSED)
def test_invisible_and_lookalike_characters_are_refused_everywhere(
    hub: HardHub, boss: str, name: str
) -> None:
    r = hub.api("POST", f"/users/{quote(name, safe='')}", boss)
    assert r.status_code == 400, r.text
    r = hub.api("POST", "/users", boss, json={"usernames": [name]})
    assert r.status_code == 400, r.text
    r = hub.api("POST", "/groups", boss, json={"groups": [name]})
    assert r.status_code == 400, r.text
    with hub.client("127.0.0.20") as c:
        assert login(c, name).status_code == 403  # refused as an invalid login, never created
    names = {u["name"] for u in hub.api("GET", "/users", boss).json()}
    assert name not in names and name.lower() not in names


def test_case_and_composition_variants_are_one_account(hub: HardHub, boss: str) -> None:
    r = hub.api("POST", "/users/lookalike", boss)
    assert r.status_code == 201 and r.json()["name"] == "lookalike"
    for variant in ("LookAlike", "LOOKALIKE"):
        assert hub.api("POST", f"/users/{variant}", boss).status_code == 409
        assert hub.api("POST", "/users", boss, json={"usernames": [variant]}).status_code == 409
    # é precomposed and e + combining acute are one name
    r = hub.api("POST", "/users", boss, json={"usernames": ["caf\u00e9"]})
    assert r.status_code == 201 and r.json()[0]["name"] == "caf\u00e9"
    r = hub.api("POST", "/users", boss, json={"usernames": ["cafe\u0301"]})
    assert r.status_code == 409, r.text
    r = hub.api("POST", "/users", boss, json={"usernames": ["CAFÉ"]})
    assert r.status_code == 409, r.text
    # logging in with another spelling reaches the same account
    with hub.client("127.0.0.21") as c:
        assert login(c, "CAFE\u0301").status_code == 302
        user = c.get("/hub/api/user").json()
        assert user["name"] == "caf\u00e9"
    names = [u["name"] for u in hub.api("GET", "/users", boss).json()]
    assert names.count("caf\u00e9") == 1 and "cafe\u0301" not in names and "CAFÉ" not in names


def test_renaming_to_a_variant_of_an_existing_name_is_refused(hub: HardHub, boss: str) -> None:
    hub.api("POST", "/users/rena", boss)
    hub.api("POST", "/users/renb", boss)
    r = hub.api("PATCH", "/users/renb", boss, json={"name": "RENA"})
    assert r.status_code == 409, r.text
    r = hub.api("PATCH", "/users/renb", boss, json={"name": "Ren\u200bc"})
    assert r.status_code == 400, r.text
    r = hub.api("PATCH", "/users/renb", boss, json={"name": "RenC"})
    assert r.status_code == 200 and r.json()["name"] == "renc"


def test_login_form_admin_lookalikes_cannot_become_the_admin(hub: HardHub) -> None:
    with hub.client("127.0.0.22") as c:
        assert login(c, "BOSS", PASSWORD).status_code == 302
        assert c.get("/hub/api/user").json()["name"] == "boss"  # the same account, not a new one
    with hub.client("127.0.0.23") as c:
        assert login(c, "\uff42\uff4f\uff53\uff53", PASSWORD).status_code == 403
        assert login(c, "boss\u200b", PASSWORD).status_code == 403
