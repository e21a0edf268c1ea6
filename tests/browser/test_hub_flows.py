"""Playwright in real headless Chromium against a live hub: log in with the dummy authenticator, start a server
and watch its progress to ready, find it on the home page, stop it; find one user among 10,000 on the admin
page by server-side search."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hubkit.testing import require

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180), pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require(HAVE_CHROMIUM, f"{CHROMIUM} is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def login(page: Any, base: str, user: str) -> None:
    await page.goto(f"{base}/hub/login")
    await page.fill("#username", user)
    async with page.expect_navigation():
        await page.click("#login-submit")
    assert page.url == f"{base}/hub/home", await page.text_content("main")


async def test_login_start_watch_progress_stop(browser, live_hub_factory):
    live = await live_hub_factory(proxy=True, spawner_config={"start_delay": 2.0})
    page = await browser.new_page()
    await login(page, live.public, "alice")
    assert await page.text_content("#who") == "alice"
    row = page.locator('tr.server-row[data-server=""]')
    assert await row.locator("td.status").text_content() == "stopped"
    await row.locator("button.start").click()
    await page.wait_for_url(f"{live.public}/hub/spawn-pending/alice")
    # live progress over SSE: the log fills in while the spawner works, then the page moves on to the server
    await page.wait_for_function("document.querySelectorAll('#progress-log li').length >= 2", timeout=30_000)
    messages = await page.locator("#progress-log li").all_text_contents()
    assert any("test spawner" in m or "Spawn requested" in m for m in messages), messages
    await page.wait_for_url(f"{live.public}/user/alice/", timeout=60_000)
    assert '"version"' in await page.content()  # the test server answered through hubkit-proxy
    await page.goto(f"{live.public}/hub/home")
    row = page.locator('tr.server-row[data-server=""]')
    assert await row.locator("td.status").text_content() == "running"
    assert await row.locator("a.open").get_attribute("href") == "/user/alice/"
    await row.locator("button.stop").click()
    await page.wait_for_url(f"{live.public}/hub/home")
    assert await page.locator('tr.server-row[data-server=""] td.status').text_content() == "stopped"


async def test_admin_finds_one_user_among_10000(browser, live_hub_factory):
    from hubkit.storage.orm import User
    from sqlalchemy import insert

    live = await live_hub_factory()
    async with live.hub.db() as s:
        await s.execute(
            insert(User),
            [
                {"name": f"user{i:05d}", "admin": False, "cookie_id": secrets.token_hex(8)}
                for i in range(10_000)
            ],
        )
        await s.commit()
    page = await browser.new_page()
    await login(page, live.public, "admin")
    await page.goto(f"{live.public}/hub/admin")
    assert "(10001)" in await page.text_content("#total")
    await page.fill("#search-q", "user07777")
    await page.click("#search-go")
    await page.wait_for_selector("#total")
    assert "(1)" in await page.text_content("#total")
    names = await page.locator("td.user-name").all_text_contents()
    assert names == ["user07777"]
    # paging through the full list stays server-side
    await page.goto(f"{live.public}/hub/admin?per_page=50&page=3&sort=name")
    assert len(await page.locator("td.user-name").all_text_contents()) == 50
    assert "page 3 of 201" in await page.text_content("#pager")


async def test_pending_page_moves_on_when_ready_without_waiting_on_a_timer(browser, live_hub_factory):
    """The ready event alone takes the browser to the server: with the page's timers frozen (Playwright's clock,
    paused), a redirect put behind ``setTimeout`` would never happen and this test would time out."""
    import datetime

    live = await live_hub_factory(proxy=True, spawner_config={"start_delay": 1.0})
    ctx = await browser.new_context()
    try:
        page = await ctx.new_page()
        await login(page, live.public, "alice")
        await page.clock.install()
        await page.clock.pause_at(datetime.datetime.now() + datetime.timedelta(seconds=1))
        await page.locator('tr.server-row[data-server=""] button.start').click()
        await page.wait_for_url(f"{live.public}/hub/spawn-pending/alice")
        await page.wait_for_url(f"{live.public}/user/alice/", timeout=30_000)
        assert '"version"' in await page.content()
    finally:
        await ctx.close()
