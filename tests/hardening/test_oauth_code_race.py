"""Races that still break promises, on SQLite and PostgreSQL.

1. **An OAuth authorization code is not single-use under concurrency.** ``take_code`` selects the code row, then
   deletes it through the ORM; a second exchange that read the row before the first committed deletes nothing
   (SQLAlchemy only warns) and is issued a token too: 8 simultaneous exchanges of one code gave up to 4 access
   tokens (SQLite and PostgreSQL). docs/security.md promises single-use codes (RFC 6749 4.1.2).
2. **Deleting a user while their server starts** answers the start request with
   ``500 {"message": "Spawn failed: unknown reason"}`` and leaves ``ERROR asyncio: Task exception was never
   retrieved`` plus an ``IntegrityError`` traceback (FOREIGN KEY: the spawn's token / event rows of a user that is
   gone) in the hub log: ``_fail`` cannot record the failure and ``engine.finish`` is never called.

3. **Renaming a user while their server starts** (see the last test).

Fault: 1 ``hubkit/oauth/codes.py`` ``take_code`` (delete with a WHERE and use the rowcount, or
``DELETE ... RETURNING``); 2 ``hubkit/spawn/lifecycle.py`` ``run_spawn``/``_fail`` (and ``services/users.py``
``delete_user``, which does not wait for / refuse a spawn in flight).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from hardhub import HardHub, login

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def boss(process_hub: HardHub) -> str:
    return process_hub.token("boss")


def _code(browser: httpx.Client, env: dict[str, str]) -> str:
    query = {
        "client_id": env["JUPYTERHUB_CLIENT_ID"],
        "redirect_uri": env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
        "response_type": "code",
        "state": "s",
    }
    r = browser.get("/hub/api/oauth2/authorize?" + urlencode(query))
    assert r.status_code in (302, 303), r.text[:300]
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]


def test_an_oauth_code_yields_one_token_however_many_exchange_it_at_once(
    process_hub: HardHub, boss: str
) -> None:
    hub = process_hub
    assert hub.api("POST", "/users/pgoauth", boss).status_code == 201
    env = hub.server_env(boss, "pgoauth")
    form = {
        "grant_type": "authorization_code",
        "client_id": env["JUPYTERHUB_CLIENT_ID"],
        "client_secret": env["JUPYTERHUB_API_TOKEN"],
        "redirect_uri": env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
    }
    with hub.client() as browser:
        assert login(browser, "pgoauth").status_code in (302, 303)
        issued: list[int] = []
        for _trial in range(6):
            code = _code(browser, env)
            gate = threading.Barrier(8)

            def exchange(_: int, code: str = code, gate: threading.Barrier = gate) -> int:
                with hub.client("127.0.0.3") as c:
                    gate.wait()
                    return c.post("/hub/api/oauth2/token", data={**form, "code": code}).status_code

            with cf.ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(exchange, range(8)))
            issued.append(statuses.count(200))
            assert set(statuses) <= {200, 400}, statuses
    assert max(issued) == 1, f"tokens issued per code: {issued}"
