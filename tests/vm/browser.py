"""Headless Chromium (Playwright) steps a person takes: log in, start a server, run a notebook cell."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hubkit.testing import require

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SPAWN_TIMEOUT_MS = int(os.environ.get("HUBKIT_VM_SPAWN_TIMEOUT_MS", "120000"))


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright Browser on the system Chromium; skips locally (fails in CI) when missing."""
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed")
        raise
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, **context_options: Any) -> Any:
    """A page in a fresh browser context: its own cookies, i.e. one person."""
    return browser.new_context(**context_options).new_page()


def login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/hub/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.locator("form").first.locator("[type=submit]").click()


def login_error(page: Any) -> str:
    """The refusal message shown on the login page after a failed attempt."""
    return str(page.locator("#login-error").inner_text(timeout=10_000))


def start_lab(page: Any, base: str, username: str) -> None:
    """Start the default server from the hub and wait until JupyterLab has loaded in it."""
    page.goto(f"{base}/hub/spawn")
    if page.locator("#spawn-form").count():  # the hub asks before starting only with an options form
        page.click("#spawn-form [type=submit]")
    try:
        page.wait_for_url(re.compile(rf"/user/{re.escape(username)}/lab"), timeout=SPAWN_TIMEOUT_MS)
        page.wait_for_selector(".jp-LauncherCard", timeout=SPAWN_TIMEOUT_MS)
    except Exception as exc:
        raise AssertionError(
            f"JupyterLab did not load: at {page.url}\n{page.inner_text('body')[:2000]}"
        ) from exc


def run_cell(page: Any, code: str, *, expect: str | None = None) -> str:
    """Open a new Python notebook from the launcher, run ``code`` in its first cell, return the output text.

    The kernel's output reaches the page over the kernel websocket, so this checks the whole path."""
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
    editor = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content").first
    editor.wait_for(timeout=60_000)
    # the kernel (started as the server's user) must be connected before the cell is sent
    page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=90_000)
    editor.click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    out = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output").first
    out.wait_for(timeout=90_000)
    if expect is not None:
        page.wait_for_function(
            "([sel, want]) => [...document.querySelectorAll(sel)].some(e => e.innerText.includes(want))",
            arg=[".jp-OutputArea-output", expect],
            timeout=30_000,
        )
    return str(out.inner_text())
