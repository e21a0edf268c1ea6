"""Issue 12 item 3: wrong passwords slow down the address that sent them, never the account for everyone, and
``X-Forwarded-For`` from a client is not believed (only the trusted proxy's own addition is).

The hub here allows 5 failures per (user, address) and 40 per address; the proxy connects from 127.0.0.1 (the
one trusted proxy), clients from other loopback addresses.
"""

from __future__ import annotations

import pytest
from hardhub import PASSWORD, HardHub, login

pytestmark = [pytest.mark.timeout(180)]


def _fail(
    hub: HardHub, name: str, source: str, times: int, headers: dict[str, str] | None = None
) -> list[int]:
    codes = []
    with hub.client(source, headers=headers or {}) as c:
        for _ in range(times):
            codes.append(login(c, name, "wrong").status_code)
    return codes


def test_failures_from_one_address_never_lock_out_another(hub: HardHub) -> None:
    assert _fail(hub, "victim1", "127.0.0.2", 5) == [403] * 5
    with hub.client("127.0.0.2") as c:
        r = login(c, "victim1", PASSWORD)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # the failing address waits
    with hub.client("127.0.0.3") as c:
        r = login(c, "victim1", PASSWORD)  # the owner, from her own address: let in at once
        assert r.status_code == 302, r.text[:300]
    assert "login refused for victim1 from 127.0.0.2" in hub.log_text()


def test_spoofed_x_forwarded_for_does_not_pick_the_bucket(hub: HardHub) -> None:
    # an attacker at 127.0.0.4 claims to be 10.9.9.9 while failing: the hub counts 127.0.0.4 (the address the
    # trusted proxy appended), not the claim
    codes = _fail(hub, "victim2", "127.0.0.4", 5, headers={"X-Forwarded-For": "10.9.9.9"})
    assert codes == [403] * 5
    assert "from 127.0.0.4" in hub.log_text() and "from 10.9.9.9" not in hub.log_text()
    # rotating the claimed address does not buy more guesses
    with hub.client("127.0.0.4", headers={"X-Forwarded-For": "10.1.2.3"}) as c:
        assert login(c, "victim2", "wrong").status_code == 429
    # and claiming to be someone else cannot make that someone wait: 127.0.0.5 claims 127.0.0.6's address
    _fail(hub, "victim3", "127.0.0.5", 5, headers={"X-Forwarded-For": "127.0.0.6"})
    with hub.client("127.0.0.6") as c:
        assert login(c, "victim3", PASSWORD).status_code == 302


def test_a_spray_of_names_from_one_address_is_slowed_per_address(hub: HardHub) -> None:
    with hub.client("127.0.0.7") as c:
        codes = [login(c, f"spray{i}", "wrong").status_code for i in range(41)]
    assert codes[:40] == [403] * 40 and codes[40] == 429
    with hub.client("127.0.0.8") as c:  # the rest of the world is unaffected
        assert login(c, "spray1", PASSWORD).status_code == 302


def test_wrong_password_then_right_one_from_the_same_address_resets_it(hub: HardHub) -> None:
    assert _fail(hub, "typo1", "127.0.0.9", 3) == [403] * 3
    with hub.client("127.0.0.9") as c:
        assert login(c, "typo1", PASSWORD).status_code == 302
    assert _fail(hub, "typo1", "127.0.0.9", 4) == [403] * 4  # the count started again after success
