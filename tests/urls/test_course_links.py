"""The chain a course link takes, in real headless Chromium against a real hub and real JupyterLab servers.

A logged-out student follows a link to a notebook on "their" server; the hub logs them in, starts the server
and lands them on that notebook. Two kinds of links are in the wild: ``/hub/user-redirect/<path>`` (through
the "not running" page) and ``/hub/spawn?next=...`` (no click at all when the spawner has no options form).
The pending page's event log is recorded as Chromium builds it, to check it lists every spawn event once.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# Reports every <li> that appears in the pending page's event log (server-rendered or added by pending.js),
# once per element, over the console: the record survives the page navigating on to the server.
RECORD_LOG = """
(() => {
  const seen = new WeakSet();
  const report = (li) => {
    if (seen.has(li)) { return; }
    seen.add(li);
    console.log("event-log: " + li.textContent);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) { continue; }
        if (n.matches("#progress-log > li")) { report(n); }
        n.querySelectorAll("#progress-log > li").forEach(report);
      }
    }
  }).observe(document, { childList: true, subtree: true });
})();
"""
NOTEBOOK = {
    "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["course notebook"]}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def put_notebook(hub: Any, user: str, name: str) -> None:
    """The file a course link points at, in the user's home (``[spawner.local] home_dir``)."""
    home = Path(hub.data_dir) / "users" / user
    home.mkdir(parents=True, exist_ok=True)
    (home / name).write_text(json.dumps(NOTEBOOK))


def stored_events(hub: Any, user: str) -> list[str]:
    """Messages of the user's latest spawn as the hub stored them (what its progress stream replays)."""
    db = sqlite3.connect(f"file:{hub.data_dir / 'hubkit.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT e.message FROM spawn_events e WHERE e.spawn_id = ("
            " SELECT s.id FROM spawns s JOIN servers v ON v.id = s.server_id JOIN users u ON u.id = v.user_id"
            " WHERE u.name = ? ORDER BY s.id DESC LIMIT 1) ORDER BY e.id",
            (user,),
        ).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def recording_page(browser: Any) -> tuple[Any, Any, list[str]]:
    ctx = browser.new_context()
    ctx.add_init_script(RECORD_LOG)
    page = ctx.new_page()
    log: list[str] = []
    page.on(
        "console",
        lambda m: log.append(m.text[len("event-log: ") :]) if m.text.startswith("event-log: ") else None,
    )
    return ctx, page, log


def log_in_here(page: Any, user: str) -> None:
    assert "/hub/login" in page.url, page.url
    page.fill("#username", user)
    page.click("#login-submit")


def notebook_open(page: Any, user: str, name: str) -> None:
    from playwright.sync_api import expect

    page.wait_for_url(re.compile(rf".*/user/{user}/lab/tree/{re.escape(name)}$"), timeout=120_000)
    tab = page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel", has_text=name)
    expect(tab).to_be_visible(timeout=120_000)
    rendered = page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown", has_text="course notebook"
    )
    expect(rendered).to_be_visible(timeout=60_000)


def check_event_log(log: list[str], hub: Any, user: str) -> None:
    """Every event of the spawn listed exactly once, in order, ending with the ready message."""
    assert log and log[-1].startswith("Server ready at "), log
    assert log == stored_events(hub, user)


def test_user_redirect_link_logs_in_starts_and_opens_the_notebook(browser: Any, make_hub: Any) -> None:
    from playwright.sync_api import expect

    hub = make_hub()
    hub.start()
    put_notebook(hub, "alice", "x.ipynb")
    ctx, page, log = recording_page(browser)
    try:
        page.goto(hub.url + "/hub/user-redirect/lab/tree/x.ipynb")
        log_in_here(page, "alice")
        # the server is not running: JupyterHub's 424 page, whose button starts it
        page.wait_for_url(re.compile(r".*/hub/user/alice/lab/tree/x\.ipynb$"))
        start = page.locator("#start-again")
        expect(start).to_be_visible()
        start.click()
        page.wait_for_url(re.compile(r".*/hub/spawn-pending/alice\?next=.*"), timeout=30_000)
        notebook_open(page, "alice", "x.ipynb")
        check_event_log(log, hub, "alice")
    finally:
        ctx.close()


def test_spawn_link_starts_without_a_click(browser: Any, make_hub: Any) -> None:
    hub = make_hub()
    hub.start()
    put_notebook(hub, "bob", "y.ipynb")
    ctx, page, log = recording_page(browser)
    visited: list[str] = []
    page.on("framenavigated", lambda f: visited.append(f.url) if f == page.main_frame else None)
    try:
        link = "/hub/spawn?next=" + quote("/hub/user-redirect/lab/tree/y.ipynb", safe="")
        page.goto(hub.url + link)
        log_in_here(page, "bob")
        notebook_open(page, "bob", "y.ipynb")
        check_event_log(log, hub, "bob")
        # login, then straight to the progress page: no spawn form and no "not running" page on the way
        paths = [re.sub(r"^https?://[^/]+", "", u) for u in visited]
        assert any(p.startswith("/hub/spawn-pending/bob?next=") for p in paths), paths
        assert not any(re.match(r"/hub/(spawn/bob|user/bob)(\?|/|$)", p) for p in paths), paths
    finally:
        ctx.close()
