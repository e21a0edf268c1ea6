"""No secret-bearing URL in a server's log: a real JupyterLab (and plain Jupyter Server) started by the
``hubkit-singleuser`` launcher, used with tokens and a browser login, then its whole log scanned."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fakehub import FakeHub
from su_harness import launch, shutdown

pytestmark = pytest.mark.timeout(120)

# a token-like query parameter whose value jupyter's access log did not replace with "[secret]"
SECRET_PARAM = re.compile(r"[?&;](?:token|code|state)=(?!\[secret\])[^\s&'\"]+")


@pytest.mark.parametrize("app", ["lab", "server"])
def test_no_secret_in_the_server_log(fakehub: FakeHub, tmp_path: Path, app: str) -> None:
    server = launch(fakehub, tmp_path, app=app)
    secrets = [fakehub.server_token]
    try:
        alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
        bob = fakehub.add_token("bob", ["access:servers!server=bob/"])
        secrets += [alice, bob]
        api = server.url + "api/status"
        assert httpx.get(api, headers={"Authorization": f"token {alice}"}).status_code == 200
        assert httpx.get(f"{api}?token={alice}", headers={"Sec-Fetch-Mode": "websocket"}).status_code == 200
        assert httpx.get(f"{api}?token={bob}", headers={"Sec-Fetch-Mode": "websocket"}).status_code == 403
        assert httpx.get(f"{api}?token={alice}").status_code == 403  # not accepted outside websockets
        with httpx.Client() as browser:  # the browser login: code and state travel in URLs
            login = browser.get(server.url + "login")
            assert login.status_code == 302
            callback = browser.get(login.headers["Location"]).headers["Location"]
            query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
            secrets += [query["code"], query["state"]]
            assert browser.get(httpx.URL(server.url).join(callback)).status_code == 302
            assert browser.get(server.url + "api/contents").status_code == 200
            assert browser.get(httpx.URL(server.url).join(callback)).status_code == 403  # a replay
    finally:
        shutdown(server)
    log = server.logtext()
    assert "Jupyter Server" in log and "is running at" in log  # the start-up lines were written
    assert "No web browser found" not in log
    assert "api/status?token=[secret]" in log  # the refused websocket request was logged, scrubbed
    assert not SECRET_PARAM.search(log), [ln for ln in log.splitlines() if SECRET_PARAM.search(ln)]
    for secret in secrets:
        assert secret not in log
    # nor in the files jupyter writes for a local browser
    for path in (tmp_path / "runtime").glob("*"):
        text = path.read_text(errors="replace")
        assert not SECRET_PARAM.search(text), path
