"""Spawn options sent to the REST API are validated by a spawner that offers an options form: a bad choice
is a 400 at once and nothing starts; a good one is stored as the spawner normalised it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hubkit import hookimpl
from hubkit.builtin.standin import StandInConfig, StandInSpawner
from hubkit.errors import InvalidOptions
from hubkit.interfaces import JSONDict, OptionsForm, UserInfo
from hubkit.storage.orm import Server, User
from hubkit.testing.plugin import make_settings
from sqlalchemy import select

pytestmark = pytest.mark.anyio


class FormSpawner(StandInSpawner):
    def options_form(self, user: UserInfo) -> OptionsForm | None:
        return OptionsForm('<select name="size"><option>small</option><option>large</option></select>')

    def parse_options(self, user: UserInfo, form: Mapping[str, Any]) -> JSONDict:
        size = form.get("size", "small")
        size = size[0] if isinstance(size, list) else size
        if size not in ("small", "large"):
            raise InvalidOptions(f"size must be small or large, not {size!r}")
        return {"size": size, "behaviour": "ok"}


class Plugin:
    __name__ = "form-spawner"

    @hookimpl
    def hubkit_register_spawners(self, registry: Any) -> None:
        registry.add("form", FormSpawner, config=StandInConfig)


@pytest.fixture
def hub_plugins() -> Sequence[object]:
    return [Plugin()]


@pytest.fixture
def hub_settings(tmp_path: Path) -> Any:
    return make_settings(tmp_path / "hub", spawner={"backend": "form"})


async def test_api_options_validated_by_the_spawner(hub: Any, client: Any, admin_headers: Any) -> None:
    assert (await client.post("/hub/api/users/carol", headers=admin_headers)).status_code == 201
    bad = await client.post(
        "/hub/api/users/carol/server", json={"user_options": {"size": "huge"}}, headers=admin_headers
    )
    assert bad.status_code == 400
    assert "size must be small or large" in bad.json()["message"]
    async with hub.db() as s:
        uid = (await s.execute(select(User.id).where(User.name == "carol"))).scalar_one()
        assert (await s.execute(select(Server).where(Server.user_id == uid))).scalar_one_or_none() is None

    good = await client.post(
        "/hub/api/users/carol/server", json={"user_options": {"size": "large"}}, headers=admin_headers
    )
    assert good.status_code in (201, 202)
    async with hub.db() as s:
        server = (await s.execute(select(Server).where(Server.user_id == uid))).scalar_one()
        assert server.user_options == {"size": "large", "behaviour": "ok"}
