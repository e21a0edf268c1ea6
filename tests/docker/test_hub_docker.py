"""The whole path with real parts: browser-style login, a container from the local image, JupyterLab and a
kernel through hubkit-proxy, stop, home volume, failures in the progress stream, hub kill -9 and restart."""

from __future__ import annotations

import re
import time

import docker
import httpx
import pytest
from hubkit_singleuser import testing as kernel_ws
from hubkit_tests_docker_hubctl import HubProc, containers, login, progress_events

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(420)]


def _spawn_via_page(c: httpx.Client, user: str, form: dict[str, str] | None = None) -> httpx.Response:
    """Start from the spawn page: without an options form its GET starts the server at once (JupyterHub's
    behaviour, 302 to the pending page); with one, the form is posted."""
    page = c.get(f"/hub/spawn/{user}")
    if page.status_code == 302 and form is None:
        assert page.headers["location"].startswith(f"/hub/spawn-pending/{user}"), page.headers
        return page
    assert page.status_code == 200, page.text[:500]
    xsrf = c.cookies.get("_xsrf", path="/hub/") or ""
    m = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    if m:
        xsrf = m.group(1)
    origin = str(c.base_url).rstrip("/")
    return c.post(
        f"/hub/spawn/{user}",
        data={"_xsrf": xsrf, **(form or {})},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )


def _run_cell(c: httpx.Client, hub_url: str, prefix: str, kernel_id: str, code: str) -> str:
    """Execute ``code`` over the kernel websocket with the browser's cookies; return its output."""
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    ws = kernel_ws.connect(f"{hub_url}{prefix}", kernel_id, {"Cookie": cookie})
    try:
        return str(kernel_ws.execute(ws, code))
    finally:
        ws.close()


def test_login_spawn_lab_kernel_stop_and_home_survives(make_hub, dclient: docker.DockerClient) -> None:
    with make_hub() as hub, httpx.Client(base_url=hub.url, timeout=60) as c:
        login(c, hub, "alice")
        r = _spawn_via_page(c, "alice")
        assert r.status_code == 302, r.text[:500]  # no options form: started by the GET
        events = progress_events(c, "/hub/api/users/alice/server/progress")
        assert events[-1].get("ready"), events
        messages = " ".join(e["message"] for e in events)
        assert "Creating container" in messages and "Starting container" in messages
        (container,) = containers(dclient, hub.hub_id, "alice")
        assert container.status == "running"
        assert "/user/alice" in hub.routes()

        # JupyterLab through hubkit-proxy, after the single-user server's OAuth round trip with the hub.
        lab = c.get("/user/alice/lab", follow_redirects=True)
        assert lab.status_code == 200, lab.text[:500]
        assert "jupyter-config-data" in lab.text and "JupyterLab" in lab.text

        # A kernel, and a cell run over its websocket (cookie auth, as a browser does).
        xsrf = c.cookies.get("_xsrf", path="/user/alice/")
        assert xsrf
        k = c.post("/user/alice/api/kernels", json={}, headers={"X-XSRFToken": xsrf})
        assert k.status_code == 201, k.text
        code = "import os\nopen(os.path.expanduser('~/persist.txt'), 'w').write('still here')\nprint(6 * 7)"
        assert _run_cell(c, hub.url, "/user/alice/", k.json()["id"], code).strip() == "42"

        # Stop from the API (admin token): container gone, route gone.
        admin = {"Authorization": f"token {hub.token('admin')}"}
        assert c.delete("/hub/api/users/alice/server", headers=admin).status_code in (202, 204)
        deadline = time.monotonic() + 60
        while containers(dclient, hub.hub_id, "alice") or "/user/alice" in hub.routes():
            assert time.monotonic() < deadline, hub.log()[-3000:]
            time.sleep(0.3)

        # A new start gets a new container on the same home volume.
        assert c.post("/hub/api/users/alice/server", headers=admin).status_code in (201, 202)
        events = progress_events(c, "/hub/api/users/alice/server/progress", headers=admin)
        assert events[-1].get("ready"), events
        (again,) = containers(dclient, hub.hub_id, "alice")
        assert again.id != container.id
        # The old server's OAuth token died with it: a page visit logs the browser in to the new one.
        assert c.get("/user/alice/lab", follow_redirects=True).status_code == 200
        got = c.get("/user/alice/api/contents/persist.txt", params={"content": "1"})
        assert got.status_code == 200, got.text[:300]
        assert got.json()["content"] == "still here"


def test_failures_reach_the_progress_stream(make_hub, dclient: docker.DockerClient, image: str) -> None:
    choices = {"good": image, "missing": "hubkit-no-such-image:0", "tiny": image}
    with make_hub(allowed_images=choices) as hub, httpx.Client(base_url=hub.url, timeout=60) as c:
        login(c, hub, "bob")
        page = c.get("/hub/spawn/bob")
        assert 'name="image"' in page.text and "hubkit-no-such-image:0" in page.text
        bad = _spawn_via_page(c, "bob", {"image": "evil/miner:latest"})
        assert bad.status_code == 400 and "not allowed" in bad.text
        assert containers(dclient, hub.hub_id, "bob") == []

        r = _spawn_via_page(c, "bob", {"image": "missing"})
        assert r.status_code == 303
        events = progress_events(c, "/hub/api/users/bob/server/progress")
        assert events[-1].get("failed"), events
        assert events[-1]["reason_code"] == "image-missing"
        assert "hubkit-no-such-image:0" in events[-1]["message"]
        assert containers(dclient, hub.hub_id, "bob") == []


def test_memory_limit_hit_fails_the_spawn(make_hub, dclient: docker.DockerClient) -> None:
    hog = ["python3", "-c", "b = []\nwhile True:\n    b.append(bytearray(16 * 1024 * 1024))"]
    with (
        make_hub(spawner={"cmd": hog}, mem_limit="64m") as hub,
        httpx.Client(base_url=hub.url, timeout=60) as c,
    ):
        admin = {"Authorization": f"token {hub.token('admin')}"}
        assert c.post("/hub/api/users/carol", headers=admin).status_code in (201, 409)
        r = c.post("/hub/api/users/carol/server", headers=admin)
        # Like JupyterHub: a spawn that fails within the API's short wait answers 500 with the reason.
        assert r.status_code == 500 and "out of memory" in r.json()["message"], r.text
        events = progress_events(c, "/hub/api/users/carol/server/progress", headers=admin)
        assert events[-1].get("failed"), events
        assert events[-1]["reason_code"] == "oom-killed", events[-1]
        assert "out of memory" in events[-1]["message"]
        assert containers(dclient, hub.hub_id, "carol") == []


def test_hub_kill9_and_restart_keeps_containers_and_routes(make_hub, dclient: docker.DockerClient) -> None:
    users = ["dan", "eve"]
    with make_hub() as hub, httpx.Client(base_url=hub.url, timeout=60) as c:
        admin = {"Authorization": f"token {hub.token('admin')}"}
        for u in users:
            assert c.post(f"/hub/api/users/{u}", headers=admin).status_code in (201, 409)
            assert c.post(f"/hub/api/users/{u}/server", headers=admin).status_code in (201, 202)
        for u in users:
            assert progress_events(c, f"/hub/api/users/{u}/server/progress", headers=admin)[-1].get("ready")
        before = {u: containers(dclient, hub.hub_id, u)[0].id for u in users}
        user_tok = {u: {"Authorization": f"token {hub.token(u)}"} for u in users}

        hub.kill9()
        for u in users:  # servers and the proxy outlive the hub
            (ct,) = containers(dclient, hub.hub_id, u)
            assert ct.status == "running" and ct.id == before[u]
            # /api needs no auth (token checks need the hub, which is down): the proxy still routes here.
            alive = c.get(f"/user/{u}/api")
            assert alive.status_code == 200 and "version" in alive.json()

        hub.start()
        deadline = time.monotonic() + 60
        while True:
            model = c.get("/hub/api/users", headers=admin).json()
            ready = {m["name"] for m in model if m.get("servers", {}).get("", {}).get("ready")}
            if set(users) <= ready:
                break
            assert time.monotonic() < deadline, hub.log()[-3000:]
            time.sleep(0.5)
        routes = hub.routes()
        for u in users:
            assert f"/user/{u}" in routes
            assert [ct.id for ct in containers(dclient, hub.hub_id, u)] == [before[u]]
            assert c.get(f"/user/{u}/api/status", headers=user_tok[u]).status_code == 200
        assert "Traceback" not in hub.log()


def test_hubproc_config_is_valid(tmp_path, image: str) -> None:
    """The generated config passes the real loader (keeps hubctl honest when config keys change)."""
    from hubkit.config.loader import load_settings

    hub = HubProc(tmp_path, image)
    settings = load_settings(hub.write_config(), env={})
    assert settings.spawner.backend == "docker"


def test_stock_jupyterhub_singleuser_command(make_hub, dclient: docker.DockerClient) -> None:
    """command = "jupyterhub-singleuser": the stock JupyterHub 6.1.1 entry point in the same image works too."""
    with make_hub(command="jupyterhub-singleuser") as hub, httpx.Client(base_url=hub.url, timeout=60) as c:
        admin = {"Authorization": f"token {hub.token('admin')}"}
        assert c.post("/hub/api/users/frank", headers=admin).status_code in (201, 409)
        assert c.post("/hub/api/users/frank/server", headers=admin).status_code in (201, 202)
        events = progress_events(c, "/hub/api/users/frank/server/progress", headers=admin)
        assert events[-1].get("ready"), events
        (ct,) = containers(dclient, hub.hub_id, "frank")
        assert ct.attrs["Config"]["Cmd"] == ["jupyterhub-singleuser"]
        tok = {"Authorization": f"token {hub.token('frank')}"}
        r = c.get("/user/frank/api/status", headers=tok)
        assert r.status_code == 200, r.text
        assert r.headers.get("x-jupyterhub-version") == "6.1.1"


def test_deleting_a_user_deletes_their_volume_when_configured(make_hub, dclient: docker.DockerClient) -> None:
    with make_hub(delete_volume_on_user_delete=True) as hub, httpx.Client(base_url=hub.url, timeout=60) as c:
        admin = {"Authorization": f"token {hub.token('admin')}"}
        assert c.post("/hub/api/users/gina", headers=admin).status_code in (201, 409)
        assert c.post("/hub/api/users/gina/server", headers=admin).status_code in (201, 202)
        assert progress_events(c, "/hub/api/users/gina/server/progress", headers=admin)[-1].get("ready")
        flt = {"label": [f"org.hubkit.hub={hub.hub_id}", "org.hubkit.user=gina"]}
        assert len(dclient.volumes.list(filters=flt)) == 1
        # Deleting the user stops the server, then the plugin's hubkit_user_deleted hook removes the volume.
        assert c.delete("/hub/api/users/gina", headers=admin).status_code == 204
        deadline = time.monotonic() + 60
        while dclient.volumes.list(filters=flt) or containers(dclient, hub.hub_id, "gina"):
            assert time.monotonic() < deadline, hub.log()[-3000:]
            time.sleep(0.3)


def test_orphans_reported_then_removed_known_adopted(
    make_hub, dclient: docker.DockerClient, image: str
) -> None:
    """After a restart, the hub asks the spawner about containers with its label: a known server is adopted;
    an unknown one is reported ([spawner] reconcile_orphans = "report") or removed ("remove")."""

    def wait_log(hub: HubProc, needle: str) -> str:
        deadline = time.monotonic() + 60
        while needle not in hub.log():
            assert time.monotonic() < deadline, hub.log()[-3000:]
            time.sleep(0.2)
        return hub.log()

    with (
        make_hub(spawner={"reconcile_orphans": "report"}) as hub,
        httpx.Client(base_url=hub.url, timeout=60) as c,
    ):
        admin = {"Authorization": f"token {hub.token('admin')}"}
        assert c.post("/hub/api/users/hank", headers=admin).status_code in (201, 409)
        assert c.post("/hub/api/users/hank/server", headers=admin).status_code in (201, 202)
        assert progress_events(c, "/hub/api/users/hank/server/progress", headers=admin)[-1].get("ready")
        (known,) = containers(dclient, hub.hub_id, "hank")
        hub.stop()
        ghost = dclient.containers.run(
            image,
            ["sleep", "600"],
            detach=True,
            name=f"hubkit-{hub.hub_id}-ghost",
            network_mode="none",
            labels={
                "org.hubkit.hub": hub.hub_id,
                "org.hubkit.user": "ghost",
                "org.hubkit.server": "",
                "org.hubkit.role": "server",
            },
        )

        hub.start()
        wait_log(hub, "adopted 1 servers")
        text = wait_log(hub, "belong to no server")
        assert ghost.name in text
        ghost.reload()
        assert ghost.status == "running"  # report only
        known.reload()
        assert known.status == "running"

        hub.stop()
        hub.spawner_overrides["reconcile_orphans"] = "remove"
        hub.start()
        wait_log(hub, f"removed 1 orphaned server resources: {ghost.name}")
        with pytest.raises(docker.errors.NotFound):
            dclient.containers.get(ghost.id)
        assert [ct.id for ct in containers(dclient, hub.hub_id, "hank")] == [known.id]
        tok = {"Authorization": f"token {hub.token('hank')}"}
        assert c.get("/user/hank/api/status", headers=tok).status_code == 200
