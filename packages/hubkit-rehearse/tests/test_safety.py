"""Credentials go to the hub URL's origin and nowhere else; big runs need --yes; bad flags send nothing.

The "hub" here is a STAND-IN (a raw HTTP listener): no real hub redirects its login form or API to another
origin, so a stand-in is the only way to play the hostile or misconfigured hub. The trap is a second listener
on another port of 127.0.0.1, i.e. another origin, but one that shares the host and so would receive
host-scoped cookies if the tool followed a redirect there.
"""

from __future__ import annotations

import json
from pathlib import Path

from rehearse_helpers import PASSWORD, RawServer, http_response, run_rehearse

ADMIN = "a" * 32
LOGIN_PAGE = """<html><body><form method="post" action="{action}">
<input type="hidden" name="_xsrf" value="x1"><input name="username"><input name="password" type="password">
</form></body></html>"""


def stand_in_hub(trap_url: str, *, login: str) -> RawServer:
    def respond(req: bytes, _port: int) -> bytes:
        line = req.split(b"\r\n", 1)[0].decode()
        method, target = line.split(" ")[:2]
        path = target.split("?")[0]
        if path in ("/hub/api", "/hub/api/"):
            return http_response("200 OK", b'{"version": "6.1.1"}', {"Content-Type": "application/json"})
        if path == "/hub/api/user":
            return http_response(
                "200 OK", b'{"name": "admin", "kind": "user"}', {"Content-Type": "application/json"}
            )
        if path == "/hub/api/users" and method == "POST":
            names = json.loads(req.split(b"\r\n\r\n", 1)[1])["usernames"]
            body = json.dumps([{"name": n} for n in names]).encode()
            return http_response("201 Created", body, {"Content-Type": "application/json"})
        if path.endswith("/tokens"):  # the per-user token: "fetch it over there" (307 keeps method and body)
            return http_response("307 Temporary Redirect", headers={"Location": trap_url + path})
        if path.startswith("/hub/api/users/") and method == "DELETE":
            return http_response("204 No Content")
        if path == "/hub/login" and login == "redirect":
            return http_response("302 Found", headers={"Location": trap_url + "/hub/login"})
        if path == "/hub/login" and login == "foreign-form":
            body = LOGIN_PAGE.format(action=trap_url + "/hub/login").encode()
            return http_response("200 OK", body, {"Content-Type": "text/html"})
        return http_response("404 Not Found")

    return RawServer(respond)


def trap_server() -> RawServer:
    return RawServer(lambda req, port: http_response("200 OK", b"thanks"))


def _assert_nothing_leaked(trap: RawServer, hub: RawServer) -> None:
    assert trap.rec.requests == [], "a request reached another origin"
    for req in hub.rec.requests:
        head = req.split(b"\r\n\r\n", 1)[0]
        assert PASSWORD.encode() not in head, "the password travelled in a URL or header"


def test_login_form_posting_elsewhere_never_gets_the_password(tmp_path: Path) -> None:
    with trap_server() as trap, stand_in_hub(trap.url, login="foreign-form") as hub:
        r = run_rehearse([hub.url, "--users", "2", "--open", "none"], tmp_path / "out")
        assert r.code == 1, r.err
        _assert_nothing_leaked(trap, hub)
    reasons = {g["reason"] for g in r.data["summary"]["failures"]}
    assert reasons == {"request to another origin refused (credentials stay with the hub)"}
    assert all(u["outcome"] == "failed" and u["steps"][0]["phase"] == "login" for u in r.users())


def test_login_redirect_to_another_origin_is_not_followed(tmp_path: Path) -> None:
    with trap_server() as trap, stand_in_hub(trap.url, login="redirect") as hub:
        r = run_rehearse([hub.url, "--users", "1", "--open", "none"], tmp_path / "out")
        assert r.code == 1, r.err
        _assert_nothing_leaked(trap, hub)
    (fail,) = r.data["summary"]["failures"]
    assert "another origin" in fail["example"] and trap.url in fail["example"]


def test_token_redirect_to_another_origin_gets_no_authorization(tmp_path: Path) -> None:
    with trap_server() as trap, stand_in_hub(trap.url, login="redirect") as hub:
        r = run_rehearse(
            [hub.url, "--users", "2", "--login", "token", "--open", "none"],
            tmp_path / "out",
            admin_token=ADMIN,
        )
        assert r.code == 1, r.err
        _assert_nothing_leaked(trap, hub)
        # the admin token did reach the hub itself (creating the users), which is where it belongs
        assert any(f"token {ADMIN}".encode() in req for req in hub.rec.requests)
    (fail,) = r.data["summary"]["failures"]
    assert fail["phase"] == "login" and fail["reason"].startswith("HTTP 307")
    assert r.data["cleanup"]["users_deleted"] == 2  # the users it created are removed again


def test_more_users_than_the_limit_need_yes_and_nothing_is_sent(tmp_path: Path) -> None:
    with trap_server() as trap:
        r = run_rehearse([trap.url, "--users", "11"], tmp_path / "out")
        assert r.code == 2 and "--yes" in r.err
        for bad in (
            ["--users", "0"],
            ["--user-pattern", "nobody"],
            ["--options", "{not json"],
            ["--options", "[1]"],
            ["--think", "a-b"],
            ["--login", "token"],  # no admin token
            ["--ramp", "100", "--max-duration", "10"],
        ):
            r = run_rehearse([trap.url, *bad], tmp_path / "bad")
            assert r.code == 2 and "error:" in r.err, (bad, r.err)
        assert trap.rec.requests == []
    r = run_rehearse(["ftp://127.0.0.1/"], tmp_path / "bad")
    assert r.code == 2 and "http" in r.err


def test_no_hub_there_is_a_clear_error(tmp_path: Path) -> None:
    with trap_server() as not_a_hub:
        r = run_rehearse([not_a_hub.url, "--users", "1"], tmp_path / "out")
    assert r.code == 2 and "without a hub version" in r.err
