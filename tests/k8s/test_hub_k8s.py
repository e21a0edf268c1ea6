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
def test_browser_start_jupyterlab_in_a_pod_then_proxy_restart_and_stop(ns: Namespace, image: str,
                                                                       tmp_path: Path) -> None:
    """One server's whole life (each JupyterLab pod costs seconds): started from the browser, a cell run in
    JupyterLab; the same server through hubkit-proxy with and without the hub's token; the hub killed and
    restarted around it; stopped. (The live progress stream of a slow start: test_kill_mid_spawn.)"""
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        require(False, "playwright is not installed")
        raise
    hub = KubeHub(tmp_path / "hub", ns, image)
    hub.reserve_home("alice")
    with running(hub):
        with sync_playwright() as pw:
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
        assert pod["metadata"]["name"] == "hubkit-alice"
        assert pod["spec"]["nodeName"] == NODE_NAME and pod["status"]["phase"] == "Running"
        assert pod["spec"]["containers"][0]["image"] == image
        assert ns.names("persistentvolumeclaims") == ["hubkit-home-alice"]
        pvc_uid = ns.objects("persistentvolumeclaims")[0]["metadata"]["uid"]

        token = hub.token("alice")
        with httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=60) as c:
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

            # stop: the pod and its token Secret go, the claim stays (a next start mounts it again: the
            # package's test_pvc_created_once_reused_and_deleted_with_the_user)
            r = c.delete("/hub/api/users/alice/server")
            assert r.status_code in (202, 204), r.text
            wait_until(lambda: _pods(ns) == [], 60, "pod gone")
            wait_until(lambda: c.get("/hub/api/users/alice").json()["servers"] == {}, 60, "server stopped")
            assert ns.objects("secrets", f"hubkit.io/hub={hub.hub_id}") == []
            assert [p["metadata"]["uid"] for p in ns.objects("persistentvolumeclaims")] == [pvc_uid]


def test_failures_reach_progress_and_leave_no_pod(ns: Namespace, image: str, tmp_path: Path) -> None:
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
        # the kubelet cannot pull the image; the scheduler finds no node with 64 TiB
        for profile, reason in (("missing-image", "could not be pulled"),
                                ("too-big", "No node in the cluster can run this server")):
            r = c.post("/hub/api/users/bob/server", json={"profile": profile})
            if r.status_code == 500:
                message = str(r.json()["message"])
            else:
                assert r.status_code in (201, 202), r.text
                events = progress(c, "bob")
                assert events[-1].get("failed"), events
                message = str(events[-1]["message"])
            assert reason in message, (profile, message)
            wait_until(lambda: _pods(ns) == [], 60, "pod gone")
            wait_until(lambda: c.get("/hub/api/users/bob").json()["servers"] == {}, 60, "server gone")


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
