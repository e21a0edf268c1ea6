"""The same command against hubkit and against JupyterHub 6.1.1, with real JupyterLab servers: a browser's
login, Start, progress, JupyterLab through the proxy (the OAuth redirect chain, cookies, ``_xsrf``), a
kernel, cells checked, stop, users removed; and the REST API path (admin token, a named server with options,
left running on request)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearse_helpers import (
    HubkitHub,
    HubProcess,
    JupyterHub,
    chp_bin,
    have_hubkit,
    have_jupyterhub,
    hub_process,
    require,
    run_rehearse,
)

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module", params=["hubkit", "jupyterhub"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    require(have_jupyterhub(), "jupyterhub==6.1.1 and jupyterlab are not installed")
    h: HubProcess
    if request.param == "hubkit":
        require(have_hubkit(), "hubkit (core, proxy, local spawner, singleuser) is not installed")
        h = HubkitHub(tmp_path_factory.mktemp("hubkit-lab"), spawner="local")
    else:
        require(chp_bin() is not None, "configurable-http-proxy is not installed (.ci/setup/proxy.sh)")
        h = JupyterHub(tmp_path_factory.mktemp("jupyterhub-lab"), spawner="local")
    with hub_process(h):
        yield h


def test_browser_session_with_jupyterlab_and_kernel(hub: HubProcess, tmp_path: Path) -> None:
    before = hub.user_names()
    r = run_rehearse(
        [hub.url, "--users", "2", "--user-pattern", "lab-{i}"], tmp_path / "out", admin_token=hub.admin_token
    )
    assert r.code == 0, r.out[-4000:] + r.err[-2000:]
    s = r.data["summary"]
    assert s["outcomes"] == {"ok": 2}
    for u in r.users():
        assert [st["phase"] for st in u["steps"]] == [
            "login",
            "start",
            "spawn",
            "open",
            "kernel",
            "cells",
            "stop",
        ]
        # /user/<name>/lab -> (server login ->) hub authorize -> oauth_callback -> /user/<name>/lab
        assert u["redirects"] >= 3
        assert len(u["cells"]) == 3  # each checked against its expected output
    assert s["phases"]["cell"]["n"] == 6
    assert r.data["hub_version"] == "6.1.1"
    assert hub.running_servers() == {} and hub.user_names() == before


def test_api_path_named_server_with_options_left_running(hub: HubProcess, tmp_path: Path) -> None:
    r = run_rehearse(
        [
            hub.url,
            "--users",
            "1",
            "--user-pattern",
            "api-{i}",
            "--login",
            "token",
            "--server-name",
            "exam",
            "--options",
            '{"course": "phys101"}',
            "--leave-running",
            "--cells-file",
            str(_cells(tmp_path)),
        ],
        tmp_path / "out",
        admin_token=hub.admin_token,
        password=None,
    )
    try:
        assert r.code == 0, r.out[-4000:] + r.err[-2000:]
        (u,) = r.users()
        assert [st["phase"] for st in u["steps"]] == ["login", "start", "spawn", "open", "kernel", "cells"]
        assert u["redirects"] == 0  # a token opens JupyterLab without the OAuth dance
        running = hub.running_servers()
        assert running["api-1/exam"]["ready"] and running["api-1/exam"]["user_options"] == {
            "course": "phys101"
        }
        assert r.data["cleanup"]["servers_left_running"] == ["api-1"] and r.data["cleanup"]["users_left"] == [
            "api-1"
        ]
    finally:
        hub.api("DELETE", "users/api-1/servers/exam")
        deadline = time.monotonic() + 60
        while hub.running_servers() and time.monotonic() < deadline:
            time.sleep(0.5)
        hub.api("DELETE", "users/api-1")


def test_a_cell_whose_output_is_wrong_fails_and_is_cleaned_up(hub: HubProcess, tmp_path: Path) -> None:
    before = hub.user_names()
    cells = tmp_path / "bad.json"
    cells.write_text('[{"code": "print(6 * 7)", "expect": "42"}, {"code": "1/0", "expect": ""}]')
    r = run_rehearse(
        [hub.url, "--users", "1", "--user-pattern", "bad-{i}", "--cells-file", str(cells)],
        tmp_path / "out",
        admin_token=hub.admin_token,
    )
    assert r.code == 1
    (g,) = r.data["summary"]["failures"]
    assert g["phase"] == "cells" and "ZeroDivisionError" in g["reason"]
    assert r.data["cleanup"]["servers_stopped"] == 1  # the failed session's server is stopped all the same
    assert hub.running_servers() == {} and hub.user_names() == before


def _cells(tmp_path: Path) -> Path:
    p = tmp_path / "cells.json"
    p.write_text(
        '[{"code": "import os; print(os.environ.get(\'JUPYTERHUB_SERVER_NAME\'))", "expect": "exam"}]'
    )
    return p
