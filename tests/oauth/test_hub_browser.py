"""The redirect login in headless Chromium: the hub's login button, the real provider's form, back to the hub,
then logout through the provider's confirmation page."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hubkit.testing import require
from oauth_helpers import RunningHub

pytestmark = [pytest.mark.anyio, pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


@pytest.fixture
async def page() -> Any:
    require(HAVE_CHROMIUM, "chromium is not installed at /usr/bin/chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context()
            yield await context.new_page()
        finally:
            await browser.close()


async def test_login_button_provider_form_and_logout(running_hub: RunningHub, page: Any) -> None:
    rh = running_hub
    await page.goto(f"{rh.url}/hub/login?next=/hub/token")
    await page.click("#login-button")
    # at the provider: its own login form
    await page.wait_for_url(f"{rh.op.issuer}/interaction/**")
    await page.fill('input[name="login"]', "alice")
    await page.fill('input[name="password"]', "whatever")
    await page.click('button[type="submit"]')
    await page.wait_for_url(f"{rh.url}/hub/token")
    assert "code=" not in page.url and "state=" not in page.url
    cookies = {c["name"]: c for c in await page.context.cookies(rh.url)}
    assert "hubkit-oauth-state" not in cookies  # the one-time login state is cleared after the callback
    async with rh.hub.db() as session:
        from hubkit.storage.orm import User
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        user = (await session.execute(select(User).where(User.name == "alice")
                                      .options(selectinload(User.groups)))).scalar_one()
    assert user.admin is True and sorted(g.name for g in user.groups) == ["hub-admins", "staff"]

    # logout: the provider asks to confirm, then sends the browser back to the hub's login page
    await page.goto(f"{rh.url}/hub/logout")
    await page.wait_for_url(f"{rh.op.issuer}/session/end**")
    await page.click('button[name="logout"]')
    await page.wait_for_url(f"{rh.url}/hub/login")
    assert await page.locator("#login-button").count() == 1
    # signed out at the provider too: the button leads to its login form again
    await page.click("#login-button")
    await page.wait_for_url(f"{rh.op.issuer}/interaction/**")
    assert await page.locator('input[name="login"]').count() == 1
