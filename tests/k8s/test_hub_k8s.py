"""The whole path, real all the way: a hub process under the Role of examples/k8s, the real API server,
scheduler and kubelet, the pod a Docker container of the local single-user image (hubkit-singleuser +
JupyterLab), hubkit-proxy in front, and headless Chromium for the person."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing import require
from hubkit_spawn_k8s.testing.controlplane import NODE_NAME
from hubkit_spawn_k8s.testing.helpers import Namespace

from .hubctl import KubeHub, progress, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
CHROMIUM = "/usr/bin/chromium"


def _pods(ns: Namespace) -> list[str]:
    return ns.names("pods")


def _run_cell(page: Any, code: str) -> str:
    from playwright.sync_api import expect

    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=120_000)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(page.get_by_text(re.compile(r"\| Idle"))).to_be_visible(timeout=120_000)  # kernel connected (websocket)
    editor = panel.locator(".jp-Cell .cm-content").first
    editor.click(timeout=60_000)
    page.keyboard.type(code)
    expect(editor).to_have_text(code)
    page.keyboard.press("Shift+Enter")
    out = panel.locator(".jp-OutputArea-output").first
    expect(out).to_be_visible(timeout=90_000)
    return str(out.inner_text())


@pytest.mark.browser
def test_browser_login_start_jupyterlab_in_a_pod_runs_a_cell(ns: Namespace, image: str, tmp_path: Path) -> None:
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        require(False, "playwright is not installed")
        raise
    hub = KubeHub(tmp_path / "hub", ns, image)
    hub.reserve_home("alice")
    with running(hub), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu",
                                           "--disable-background-networking"])
        try:
            page = browser.new_context().new_page()
            page.goto(hub.url + "/hub/home")
            page.fill("#username", "alice")
            page.click("#login-submit")
            page.wait_for_load_state()
            assert page.url.endswith("/hub/home"), page.url
            page.locator("button.start, a.start").first.click()
            if page.locator("#spawn-form").count():
                page.click("#start")
            page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
            expect(page.locator(".jp-LauncherCard").first).to_be_visible(timeout=120_000)
            assert _run_cell(page, "print(6*7)").strip() == "42"
        finally:
            browser.close()
        # it really was a pod on the kubelet's node, with the user's claim as home
        (pod,) = ns.objects("pods")
        assert pod["spec"]["nodeName"] == NODE_NAME and pod["status"]["phase"] == "Running"
        assert pod["spec"]["containers"][0]["image"] == image
        assert ns.names("persistentvolumeclaims") == ["hubkit-home-alice"]


# hubkit-singleuser, started 12 s late: the spawn outlasts the API's 10 s wait (202), so the progress stream is
# read live, with the pod's events in it
SLOW_SINGLEUSER = ["/usr/bin/tini", "-g", "--", "sh", "-c", "sleep 12; exec hubkit-singleuser"]


def test_spawn_through_proxy_stop_pvc_reuse_and_restart(ns: Namespace, image: str, tmp_path: Path) -> None:
    hub = KubeHub(tmp_path / "hub", ns, image, k8s={"cmd": SLOW_SINGLEUSER})
    hub.reserve_home("alice")
    with running(hub):
        token = hub.token("alice")
        with httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=60) as c:
            r = c.post("/hub/api/users/alice/server")
            assert r.status_code == 202, r.text
            events = progress(c, "alice")
            assert events[-1].get("ready"), events
            text = [e["message"] for e in events]
            assert f"Scheduled on node {NODE_NAME}" in text, text
            assert "Container started" in text, text
            assert _pods(ns) == ["hubkit-alice"]
            pvc_uid = ns.objects("persistentvolumeclaims")[0]["metadata"]["uid"]

            # through hubkit-proxy to hubkit-singleuser in the pod, authenticated by the hub
            api = c.get("/user/alice/api/status")
            assert api.status_code == 200, api.text[:300]
            assert "started" in api.json()
            assert c.get("/user/alice/api/contents/").status_code == 200
            other = httpx.get(f"{hub.url}/user/alice/api/status", timeout=30)
            assert other.status_code in (302, 401, 403)  # no token: the server refuses

            # hub restart (kill -9): the pod keeps running, the new hub re-adopts it
            hub.stop(signal.SIGKILL)
            hub.start()
            model = c.get("/hub/api/users/alice").json()
            assert model["servers"][""]["ready"] is True, model
            assert c.get("/user/alice/api/status").status_code == 200
            assert _pods(ns) == ["hubkit-alice"]

            # stop: the pod and its token Secret go (grace period), the claim stays
            r = c.delete("/hub/api/users/alice/server")
            assert r.status_code in (202, 204), r.text
            wait_until(lambda: _pods(ns) == [], 60, "pod gone")
            wait_until(lambda: c.get("/hub/api/users/alice").json()["servers"] == {}, 60, "server stopped")
            assert ns.objects("secrets", f"hubkit.io/hub={hub.hub_id}") == []

            # a second server mounts the same claim
            assert c.post("/hub/api/users/alice/server").status_code in (201, 202)
            assert progress(c, "alice")[-1].get("ready")
            assert [p["metadata"]["uid"] for p in ns.objects("persistentvolumeclaims")] == [pvc_uid]
            assert c.delete("/hub/api/users/alice/server").status_code in (202, 204)
            wait_until(lambda: _pods(ns) == [], 60, "pod gone")


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ("missing-image", "could not be pulled"),
        ("too-big", "No node in the cluster can run this server"),
    ],
)
def test_failure_reaches_progress_and_leaves_no_pod(ns: Namespace, image: str, tmp_path: Path, profile: str,
                                                    reason: str) -> None:
    profiles = [
        {"slug": "ok", "display_name": "OK", "default": True},
        {"slug": "missing-image", "display_name": "Broken", "image": "registry.invalid/nobody/missing:0"},
        {"slug": "too-big", "display_name": "Too big", "mem_limit": "64Ti"},
    ]
    hub = KubeHub(tmp_path / "hub", ns, image, k8s={"profiles": profiles, "storage": {"enabled": False}},
                  proxy="none")
    with running(hub), httpx.Client(base_url=hub.url, headers={"Authorization": f"token {hub.token('bob')}"},
                                    timeout=60) as c:
        # options that bypass the form are refused by the spawner at once (400), before any pod exists
        refused = c.post("/hub/api/users/bob/server", json={"profile": "huge"})
        assert refused.status_code == 400, refused.text
        assert "unknown profile 'huge'" in refused.json()["message"]
        assert _pods(ns) == []
        r = c.post("/hub/api/users/bob/server", json={"profile": profile})
        if r.status_code == 500:
            message = str(r.json()["message"])
        else:
            assert r.status_code in (201, 202), r.text
            events = progress(c, "bob")
            assert events[-1].get("failed"), events
            message = str(events[-1]["message"])
        assert reason in message, message
        wait_until(lambda: _pods(ns) == [], 60, "pod gone")


@pytest.mark.parametrize("mode", ["report", "remove"])
def test_unknown_labelled_pod_reported_or_removed_at_hub_start(ns: Namespace, image: str, tmp_path: Path,
                                                               mode: str) -> None:
    hub = KubeHub(tmp_path / "hub", ns, image, spawner={"reconcile_orphans": mode}, proxy="none")
    labels = {"hubkit.io/hub": hub.hub_id, "hubkit.io/component": "singleuser-server", "hubkit.io/user": "eve"}
    nowhere = {"nodeSelector": {"hubkit.io/pool": "none"}, "containers": [{"name": "c", "image": image}]}
    ns.cluster.ok("POST", f"/api/v1/namespaces/{ns.name}/pods", {
        "apiVersion": "v1", "kind": "Pod", "spec": nowhere,
        "metadata": {"name": "hubkit-eve", "labels": labels, "annotations": {"hubkit.io/username": "eve"}}})
    ns.cluster.ok("POST", f"/api/v1/namespaces/{ns.name}/pods",
                  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "someone-else"}, "spec": nowhere})
    with running(hub):
        if mode == "remove":
            wait_until(lambda: _pods(ns) == ["someone-else"], 60, "orphan removed")
            wait_until(lambda: f"{ns.name}/hubkit-eve" in hub.log(), 30, "log line")
        else:
            wait_until(lambda: f"{ns.name}/hubkit-eve" in hub.log() and "reconcile_orphans" in hub.log(), 60,
                       "log line")
            assert _pods(ns) == ["hubkit-eve", "someone-else"]
