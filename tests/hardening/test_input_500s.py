"""Input that still answers 500.

1. U+0000 is valid UTF-8 and valid JSON (``"\\u0000"``), so the input boundary lets it through; PostgreSQL cannot
store or even compare it in a text column (``invalid byte sequence for encoding "UTF8": 0x00``), so every request
that carries one into a query answers 500 with a traceback in the hub log. SQLite takes it.

Found by a page/form fuzzer and confirmed on the API: token notes, ``name_filter``, a server's
``display_name``, a service's ``url``, any path name (``/users/x%00``, ``/groups/x%00``, ``/services/x%00``),
``/hub/admin?q=%00`` and the OAuth endpoints' ``client_id``.

Fault: ``hubkit/inputs.py`` (``check_text``/``check_json``/``decode_url_part`` and the form check in
``web/pages/common.py``): refuse NUL at the boundary with 400, as lone surrogates are.

2. A user name of the longest allowed length cannot start a server (see the last test).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hardhub import HardHub, login

pytestmark = [pytest.mark.timeout(240)]

API: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/users/pgnul/tokens", {"json": {"note": "a\u0000b"}}),
    ("GET", "/users", {"params": {"name_filter": "a\u0000"}}),
    ("PATCH", "/users/pgnul/servers/n1", {"json": {"display_name": "a\u0000"}}),
    ("POST", "/services/pgnulsvc", {"json": {"url": "http://a\u0000"}}),
    ("GET", "/users/pgnul%00", {}),
    ("GET", "/groups/pgnulg%00", {}),
    ("GET", "/services/pgnul%00", {}),
]


@pytest.fixture(scope="module")
def boss(process_hub: HardHub) -> str:
    boss = process_hub.token("boss")
    assert process_hub.api("POST", "/users/pgnul", boss).status_code == 201
    assert process_hub.api("POST", "/groups/pgnulg", boss).status_code == 201
    assert process_hub.api("PUT", "/users/pgnul/servers/n1", boss).status_code in (201, 202)
    return boss


@pytest.mark.parametrize(("method", "path", "kw"), API, ids=[f"{m} {p}" for m, p, _ in API])
def test_a_nul_character_in_api_input_is_not_a_500(
    process_hub: HardHub, boss: str, method: str, path: str, kw: dict[str, Any]
) -> None:
    r = process_hub.api(method, path, boss, **kw)
    assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text[:200]}"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/hub/admin", {"q": "a\u0000"}),
        ("/hub/api/oauth2/authorize", {"client_id": "a\u0000", "response_type": "code"}),
    ],
)
def test_a_nul_character_in_a_page_query_is_not_a_500(
    process_hub: HardHub, boss: str, path: str, params: dict[str, str]
) -> None:
    with process_hub.client() as c:
        login(c, "boss")
        r = c.get(path, params=params)
    assert r.status_code < 500, f"{path}: {r.status_code}"


def test_a_nul_character_in_the_oauth_token_form_is_not_a_500(process_hub: HardHub, boss: str) -> None:
    form = {"grant_type": "authorization_code", "client_id": "a\u0000", "client_secret": "x", "code": "c"}
    mark = len(process_hub.log_text())
    with process_hub.client() as c:
        r = c.post("/hub/api/oauth2/token", data=form)
    assert r.status_code < 500, r.text[:200]
    assert "Traceback" not in process_hub.log_text()[mark:], process_hub.log_text()[mark:][:2000]


@pytest.mark.parametrize(
    ("user", "server"),
    [("pglong" + "x" * 249, ""), ("pglongserver", "s" * 250), ("é" * 255, "ü" * 255)],
    ids=["user-255", "server-250", "both-255-percent-encoded"],
)
def test_names_of_the_longest_allowed_length_can_start_a_server(
    process_hub: HardHub, boss: str, user: str, server: str
) -> None:
    """Names may be 255 characters (docs/security.md). The server's OAuth client id
    (``jupyterhub-user-<name>[-<server>]``) and its callback URL overflowed their ``VARCHAR`` columns on PostgreSQL,
    the stand-in spawner named its log file after the full name (``File name too long``), and the start answered
    500 with the raw SQL statement and its parameters in the user-visible failure."""
    assert process_hub.api("POST", f"/users/{user}", boss).status_code == 201
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    r = process_hub.api("POST", path, boss)
    assert "[SQL:" not in r.text, r.text[:300]
    assert r.status_code in (201, 202), r.text[:300]
    model = process_hub.api("GET", f"/users/{user}", boss).json()
    assert model["servers"][server]["ready"] or model["servers"][server]["pending"] == "spawn", model
    assert process_hub.api("DELETE", path, boss).status_code in (202, 204)


@pytest.mark.parametrize("token_id", ["a2147483648", "a9999999999999999999"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_token_id_beyond_the_integer_column_is_a_404(
    process_hub: HardHub, boss: str, method: str, token_id: str
) -> None:
    """Found by schemathesis on PostgreSQL (``--seed 4242``): the documented token id pattern ``^a[0-9]{1,19}$``
    admits ids the ``INTEGER`` id column cannot hold (PostgreSQL: above 2**31 - 1; SQLite: above 2**63 - 1), and
    the query fails with a 500 (``hubkit/api/tokens.py`` ``_token_id``; ``/hub/token/revoke`` in
    ``web/pages/tokens.py`` the same)."""
    r = process_hub.api(method, f"/users/boss/tokens/{token_id}", boss)
    assert r.status_code == 404, r.text[:200]


def test_the_token_page_revokes_an_absurd_token_id_without_a_500(process_hub: HardHub, boss: str) -> None:
    with process_hub.client() as c:
        login(c, "boss")
        xsrf = re.search(r'name="_xsrf" value="([0-9a-f]+)"', c.get("/hub/token").text)
        assert xsrf
        r = c.post("/hub/token/revoke", data={"token_id": "9" * 22, "_xsrf": xsrf.group(1)})
    assert r.status_code < 500, r.status_code
