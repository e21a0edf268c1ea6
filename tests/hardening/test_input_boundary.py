"""Issue 12 items 2, 8 and 10: text that cannot be encoded, calendar edges, huge numbers, deep JSON and
schema violations are 400s at the door; data stored before these checks can never make an endpoint fail."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hardhub import HardHub, login

pytestmark = [pytest.mark.timeout(180)]
LONE = '"\\ud800"'  # a JSON string holding a lone surrogate


def _raw_json(hub: HardHub, method: str, path: str, token: str, text: str) -> tuple[int, str]:
    r = hub.api(method, path, token, content=text.encode(), headers={"Content-Type": "application/json"})
    return r.status_code, r.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", '{"usernames": [' + LONE + "]}"),
        ("POST", "/users/lone1/tokens", '{"note": ' + LONE + "}"),
        ("PATCH", "/users/lone1", '{"name": ' + LONE + "}"),
        ("PATCH", "/users/lone1", '{"groups": [' + LONE + "]}"),
        ("POST", "/groups", '{"groups": [' + LONE + "]}"),
        ("POST", "/users/lone1/servers/srv", '{"user_options": {"x": ' + LONE + "}}"),
        ("POST", "/users/lone1/servers/srv", '{"x": ' + LONE + "}"),
        ("PUT", "/users/lone1/servers/srv2", '{"user_options": {' + LONE + ": 1}}"),
        ("PUT", "/groups/g1/properties", '{"k": ' + LONE + "}"),
        ("POST", "/users/lone1/activity", '{"last_activity": ' + LONE + "}"),
    ],
)
def test_lone_surrogates_are_refused_everywhere_json_enters(
    hub: HardHub, boss: str, method: str, path: str, body: str
) -> None:
    hub.api("POST", "/users/lone1", boss)
    hub.api("POST", "/groups/g1", boss)
    status, text = _raw_json(hub, method, path, boss, body)
    assert status == 400, text
    assert "surrogate" in text or "UTF-8" in text
    # nothing was stored and every reader still answers
    assert hub.api("GET", "/users", boss).status_code == 200
    assert hub.api("GET", "/users/lone1", boss).status_code == 200
    assert hub.api("GET", "/groups", boss).status_code == 200


@pytest.mark.parametrize("raw", ["%C0%AE%C0%AE", "%ff%fe", "%ED%A0%80", "a%80b"])
def test_invalid_utf8_in_paths_is_refused_not_turned_into_replacement_characters(
    hub: HardHub, boss: str, raw: str
) -> None:
    for method, path in (("POST", f"/users/{raw}"), ("GET", f"/users/{raw}"), ("POST", f"/groups/{raw}")):
        r = hub.api(method, path, boss)
        assert r.status_code == 400, (method, path, r.text)
    r = hub.api("GET", f"/users?name_filter={raw}", boss)
    assert r.status_code == 400, r.text
    names = [u["name"] for u in hub.api("GET", "/users", boss).json()]
    assert not any("\ufffd" in n for n in names), names
    with hub.client() as c:  # pages too
        assert c.get(f"/hub/spawn/{raw}").status_code == 400


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999999-00:01"]
)
def test_activity_timestamps_at_the_edges_of_the_calendar(hub: HardHub, boss: str, stamp: str) -> None:
    hub.api("POST", "/users/edge1", boss)
    r = hub.api("POST", "/users/edge1/activity", boss, json={"last_activity": stamp})
    assert r.status_code == 400, r.text
    r = hub.api("POST", "/users/edge1/activity", boss, json={"servers": {"": {"last_activity": stamp}}})
    assert r.status_code in (400, 404), r.text
    assert hub.api("GET", "/users/edge1", boss).status_code == 200


@pytest.mark.parametrize("value", [999_999_999_999, 10**30, 3_153_600_001])
def test_huge_expires_in_is_a_400(hub: HardHub, boss: str, value: int) -> None:
    r = hub.api("POST", "/users/boss/tokens", boss, json={"expires_in": value})
    assert r.status_code == 400, r.text
    assert "expires_in" in r.text


def test_largest_allowed_expires_in_works(hub: HardHub, boss: str) -> None:
    r = hub.api("POST", "/users/boss/tokens", boss, json={"expires_in": 3_153_600_000})
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"].startswith(("21", "22"))


@pytest.mark.parametrize("depth", [40, 990, 100_000])
def test_deeply_nested_json_is_a_400(hub: HardHub, boss: str, depth: int) -> None:
    hub.api("POST", "/users/deep1", boss)
    body = '{"user_options": ' + "[" * depth + "]" * depth + "}"
    status, text = _raw_json(hub, "POST", "/users/deep1/servers/d", boss, body)
    assert status in (400, 413), text
    status, text = _raw_json(
        hub, "PUT", "/groups/g1/properties", boss, '{"a":' + "[" * depth + "]" * depth + "}"
    )
    assert status in (400, 404, 413), text


def test_nan_and_infinity_are_not_json(hub: HardHub, boss: str) -> None:
    hub.api("POST", "/groups/g2", boss)
    for literal in ("NaN", "Infinity", "-Infinity"):
        status, text = _raw_json(hub, "PUT", "/groups/g2/properties", boss, '{"x": ' + literal + "}")
        assert status == 400, text
    assert hub.api("GET", "/groups/g2", boss).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users/schema1/servers/s", {"display_name": 5}),
        ("POST", "/users/schema1/servers/s", {"display_name": 5, "profile": "small"}),
        ("PUT", "/users/schema1/servers/s2", {"display_name": ["x"]}),
        ("PATCH", "/users/schema1", {"admin": "yes"}),
        ("PATCH", "/users/schema1", {"nickname": "x"}),
        ("POST", "/users", {"usernames": "schema2"}),
        ("POST", "/users", {"usernames": []}),
        ("POST", "/users/schema1/tokens", {"expires_in": "10"}),
        ("POST", "/users/schema1/tokens", {"note": 7}),
        ("POST", "/groups", {"groups": ["gg"], "users": "schema1"}),
        ("POST", "/users/schema1/activity", {"servers": []}),
    ],
)
def test_requests_that_violate_the_openapi_schema_are_refused(
    hub: HardHub, boss: str, method: str, path: str, body: object
) -> None:
    hub.api("POST", "/users/schema1", boss)
    r = hub.api(method, path, boss, json=body)
    assert r.status_code == 400, (method, path, body, r.text)
    model = hub.api("GET", "/users/schema1", boss).json()
    assert model["admin"] is False and "s" not in model.get("servers", {})


def test_405_names_every_allowed_method(hub: HardHub, boss: str) -> None:
    for path, expected in (
        ("/users", {"GET", "POST"}),
        ("/users/schema1", {"GET", "POST", "PATCH", "DELETE"}),
        ("/users/schema1/server", {"GET", "POST", "DELETE"}),
    ):
        r = hub.api("PUT", path, boss, json={})
        assert r.status_code == 405, (path, r.text)
        allow = {m.strip() for m in r.headers["allow"].split(",")}
        assert expected <= allow, (path, allow)
        assert "PUT" not in allow


def _store_lone_surrogate(hub: HardHub, user: str) -> None:
    """Write a lone surrogate straight into the database, as rows written before the fix hold them."""
    doc = json.dumps({"x": "\ud800"})  # ensure_ascii: the JSON text is ASCII, its value is a lone surrogate
    sql = (
        "UPDATE servers SET user_options = '" + doc + "' WHERE user_id = "
        "(SELECT id FROM users WHERE name = '" + user + "')"
    )
    if hub.db_url.startswith("sqlite"):
        with sqlite3.connect(Path(hub.tmp) / "data" / "hub.sqlite") as db:
            db.execute(sql)
    else:
        from hubkit.testing.postgres import PgCluster  # noqa: F401  (the cluster is the session fixture's)

        url = hub.db_url.split("+asyncpg", 1)[1]  # "://postgres@/db?host=...&port=..."
        dbname = url.split("/", 3)[3].split("?")[0]
        host = url.split("host=")[1].split("&")[0]
        port = url.split("port=")[1]
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-h", host, "-p", port, "-d", dbname, "-c", sql],
            check=True,
            capture_output=True,
        )


def test_rows_stored_before_the_checks_never_make_a_reader_fail(hub: HardHub, boss: str) -> None:
    hub.api("POST", "/users/old1", boss)
    r = hub.api("PUT", "/users/old1/servers/named", boss, json={"user_options": {"x": "ok"}})
    assert r.status_code == 201, r.text
    _store_lone_surrogate(hub, "old1")
    for path in ("/users", "/users?name_filter=old", "/users/old1", "/users/old1/servers/named"):
        r = hub.api("GET", path, boss)
        assert r.status_code == 200, (path, r.text)
        json.loads(r.text)  # still a valid JSON document
    named = hub.api("GET", "/users/old1/servers/named", boss).json()
    assert named["user_options"]["x"] == "\ud800"  # nothing lost: the stored value comes back as stored
    with hub.client() as c:  # and the pages render
        login(c, "boss")
        r = c.get("/hub/admin")
        assert r.status_code == 200 and "old1" in r.text
        assert c.get("/hub/home").status_code == 200
