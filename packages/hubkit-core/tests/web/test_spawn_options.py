"""The spawn page shows the spawner's options form, validates it server-side, and re-renders it on errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hubkit.builtin.standin import StandInConfig, StandInSpawner
from hubkit.interfaces import OptionsForm, UserInfo
from hubkit.plugins import hookimpl

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
SAME = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}


class FormSpawner(StandInSpawner):
    """The test spawner plus an options form (its parse_options already validates ``behaviour``)."""

    def options_form(self, user: UserInfo) -> OptionsForm | None:
        return OptionsForm('<label>Behaviour <input name="behaviour" id="behaviour" value="ok"></label>')


class FormPlugin:
    __name__ = "form_spawner"

    @hookimpl
    def hubkit_register_spawners(self, registry: Any) -> None:
        registry.add("form-test", FormSpawner, config=StandInConfig)


@pytest.fixture
def hub_plugins():
    return (FormPlugin(),)


@pytest.fixture
def hub_settings(tmp_path):
    from hubkit.testing.plugin import make_settings

    return make_settings(tmp_path / "hub", spawner={"backend": "form-test"})


async def test_options_form_validated(client, login, admin_headers):
    xsrf = await login("alice")
    home = await client.get("/hub/home")
    assert 'href="/hub/spawn/alice"' in home.text  # with options, Start leads to the form
    page = await client.get("/hub/spawn/alice")
    assert page.status_code == 200 and 'id="behaviour"' in page.text
    r = await client.post("/hub/spawn/alice", data={"_xsrf": xsrf, "behaviour": "explode"}, headers=SAME)
    assert r.status_code == 400 and "behaviour must be one of" in r.text and 'id="behaviour"' in r.text
    model = (await client.get("/hub/api/users/alice", headers=admin_headers)).json()
    assert model["servers"] == {}  # nothing started
    r = await client.post("/hub/spawn/alice", data={"_xsrf": xsrf, "behaviour": "ok"}, headers=SAME)
    assert r.status_code == 303
    pending = await client.get("/hub/spawn-pending/alice")
    url = re.search(r'data-progress-url="([^"]*)"', pending.text).group(1)
    if url:
        await client.get(url, headers={"Sec-Fetch-Site": "same-origin"})
    srv = (await client.get("/hub/api/users/alice/server", headers=admin_headers)).json()
    assert srv["user_options"] == {"behaviour": "ok"} and srv["ready"] is True
