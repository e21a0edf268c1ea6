"""What the optional admin token is used for: creating users and their tokens (``--login token``), learning
which users a run created (so it removes exactly those), and removing them afterwards. All through the
hub's REST API, so it works with any authenticator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import quote

from .browser import Browser, HubHTTPError, Origin

BATCH = 100  # usernames per POST /users


class Admin:
    def __init__(self, origin: Origin, token: str, timeout: float, ca_file: str | None = None) -> None:
        self.browser = Browser(origin, token=token, timeout=timeout, ca_file=ca_file)
        self.token_ids: dict[str, str] = {}  # user -> id of the token this run issued

    async def aclose(self) -> None:
        await self.browser.aclose()

    async def whoami(self) -> str:
        r = await self.browser.api("GET", "user")
        if r.status_code != 200:
            raise HubHTTPError("GET", str(r.url), r.status_code, r.text)
        return str(r.json().get("name"))

    async def existing(self, names: Iterable[str], concurrency: int = 10) -> set[str]:
        sem = asyncio.Semaphore(concurrency)
        found: set[str] = set()

        async def one(name: str) -> None:
            async with sem:
                r = await self.browser.api("GET", f"users/{quote(name, safe='')}")
            if r.status_code == 200:
                found.add(name)
            elif r.status_code != 404:
                raise HubHTTPError("GET", str(r.url), r.status_code, r.text)

        async with asyncio.TaskGroup() as tg:
            for n in names:
                tg.create_task(one(n))
        return found

    async def create_users(self, names: list[str], created: set[str]) -> None:
        """Create the missing ones, adding to ``created`` as they are (existing users are left alone), so a
        failure half-way still knows what to remove."""
        for i in range(0, len(names), BATCH):
            r = await self.browser.api("POST", "users", json_body={"usernames": names[i : i + BATCH]})
            if r.status_code == 201:
                created.update(str(u["name"]) for u in r.json())
            elif r.status_code != 409:  # 409: all of them exist already
                raise HubHTTPError("POST", str(r.url), r.status_code, r.text)

    async def issue_token(self, name: str, expires_in: int) -> str:
        r = await self.browser.api(
            "POST",
            f"users/{quote(name, safe='')}/tokens",
            json_body={"note": "hubkit rehearse", "expires_in": expires_in},
        )
        if r.status_code not in (200, 201):
            raise HubHTTPError("POST", str(r.url), r.status_code, r.text)
        data = r.json()
        if data.get("id"):
            self.token_ids[name] = str(data["id"])
        return str(data["token"])

    async def revoke_token(self, name: str) -> None:
        token_id = self.token_ids.pop(name, None)
        if token_id:
            await self.browser.api(
                "DELETE", f"users/{quote(name, safe='')}/tokens/{quote(token_id, safe='')}"
            )

    async def delete_user(self, name: str) -> bool:
        """True once the user is gone; False if the hub refused for now (e.g. a stop still pending)."""
        r = await self.browser.api("DELETE", f"users/{quote(name, safe='')}")
        if r.status_code in (204, 404):
            return True
        if r.status_code in (400, 409, 423, 503):
            return False
        raise HubHTTPError("DELETE", str(r.url), r.status_code, r.text)
