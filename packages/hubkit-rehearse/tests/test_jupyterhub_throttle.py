"""JupyterHub 6.1.1 answers 429 with Retry-After once concurrent_spawn_limit spawns are pending (where hubkit
queues). The rehearsal waits as told, tries again, counts every 429, and every user still gets a server.

JupyterHub runs with configurable-http-proxy and the STAND-IN in-hub spawner of ``jh_standin_spawner.py``
(1 s pretend start-up), so the throttle is reached without dozens of JupyterLab processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearse_helpers import JupyterHub, chp_bin, have_jupyterhub, hub_process, require, run_rehearse

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def jupyterhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterHub]:
    require(have_jupyterhub(), "jupyterhub==6.1.1 is not installed")
    require(chp_bin() is not None, "configurable-http-proxy is not installed (.ci/setup/proxy.sh)")
    h = JupyterHub(
        tmp_path_factory.mktemp("jupyterhub-throttled"), spawner="standin", limit=4, retry=(1, 2), delay=1.0
    )
    with hub_process(h):
        yield h


def test_429_answers_are_retried_after_the_hubs_retry_after(jupyterhub: JupyterHub, tmp_path: Path) -> None:
    before = jupyterhub.user_names()
    r = run_rehearse(
        [jupyterhub.url, "--users", "12", "--yes", "--open", "api", "--user-pattern", "t{i:02d}"],
        tmp_path / "out",
        admin_token=jupyterhub.admin_token,
    )
    assert r.code == 0, r.out[-4000:] + r.err[-2000:]
    s = r.data["summary"]
    assert s["outcomes"] == {"ok": 12}
    q = s["queue"]
    # 12 at once through 4 spawn slots: several are refused (how many depends on how close their logins end)
    assert q["users_429"] >= 3 and q["retries_429"] >= q["users_429"]
    assert q["seconds_waited_429"] >= q["retries_429"]  # Retry-After was 1-2 s, and it was honoured
    assert q["users_queued"] == 0
    assert sum(u["retries_429"] for u in r.users()) == q["retries_429"]
    assert jupyterhub.running_servers() == {} and jupyterhub.user_names() == before
