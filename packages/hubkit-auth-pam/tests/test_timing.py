"""An unknown user takes about as long to refuse as a wrong password (and PAM's own sleep is not ours)."""

from __future__ import annotations

import statistics
import time

import anyio
import anyio.to_thread
import pytest
from hubkit.errors import AuthFailed
from hubkit.interfaces import Credentials
from hubkit.plugins.registry import HubInfo
from hubkit_auth_pam import PAMAuthenticator, PAMConfig, pam_calls
from hubkit_auth_pam.testing import OSAccounts

pytestmark = [pytest.mark.anyio, pytest.mark.root, pytest.mark.timeout(120)]

DELAY = 0.4
TOLERANCE = 0.1  # seconds between the two medians; PAM's own sleep alone is 2-3.75 s on Debian


async def _time_refusal(auth: PAMAuthenticator, name: str, password: str) -> float:
    t0 = time.monotonic()
    with pytest.raises(AuthFailed, match="Invalid username or password"):
        await auth.authenticate(Credentials(username=name, password=password))
    return time.monotonic() - t0


async def test_unknown_user_takes_as_long_as_wrong_password(
    os_accounts: OSAccounts, hub_info: HubInfo
) -> None:
    name = os_accounts.user("time")
    auth = PAMAuthenticator(PAMConfig(failure_delay_seconds=DELAY), hub_info)
    await auth.startup()
    wrong: list[float] = []
    unknown: list[float] = []
    for i in range(5):  # interleaved, so load changes hit both sides alike
        wrong.append(await _time_refusal(auth, name, f"wrong-{i}"))
        unknown.append(await _time_refusal(auth, os_accounts.name(f"ghost{i}"), "Corr3ct-horse"))
        unknown.append(await _time_refusal(auth, "bad name;", "x"))  # a name PAM never sees
    assert min(wrong + unknown) >= DELAY
    assert abs(statistics.median(wrong) - statistics.median(unknown)) < TOLERANCE, (wrong, unknown)
    # The configured delay replaced PAM's randomized 2-3 s sleep (Debian's login service asks for 3 s).
    assert max(wrong + unknown) < DELAY + 1.0, (wrong, unknown)


async def test_waiting_refusals_hold_no_worker_thread(os_accounts: OSAccounts, hub_info: HubInfo) -> None:
    """Ten refusals at once with one PAM slot: if each held its slot (a thread) while waiting, they would take
    10 x 2 s; waiting on the loop they take about max(2 s, ten PAM checks)."""
    name = os_accounts.user("par")
    auth = PAMAuthenticator(PAMConfig(failure_delay_seconds=2.0, max_concurrent_checks=1), hub_info)
    await auth.startup()
    durations: list[float] = []

    async def one(i: int) -> None:
        durations.append(await _time_refusal(auth, name, f"wrong-{i}"))

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    total = time.monotonic() - t0
    assert len(durations) == 10
    assert all(d >= 2.0 for d in durations)
    assert total < 10.0, f"10 parallel refusals took {total:.2f}s (serialized waits?)"


async def test_without_the_delay_unknown_users_still_cost_a_hash(
    os_accounts: OSAccounts, hub_info: HubInfo
) -> None:
    """Second layer: pam_unix does not hash for an unknown account (a few ms against tens of ms for a wrong
    password); the authenticator hashes anyway. The uniform delay above is what makes the times equal; this
    narrows the gap when the delay is set short."""
    os_accounts.user("nodelay")  # at least one account with a modern hash for the dummy to copy
    auth = PAMAuthenticator(PAMConfig(failure_delay_seconds=0), hub_info)
    await auth.startup()
    assert auth._dummy.available and auth._dummy.hash("x") is not None
    raw: list[float] = []
    refused: list[float] = []
    burns: list[float] = []
    for i in range(5):
        ghost = os_accounts.name(f"ghost{i}")
        t0 = time.monotonic()
        await anyio.to_thread.run_sync(lambda g=ghost: pam_calls.login(g, "Corr3ct-horse", service="login"))
        raw.append(time.monotonic() - t0)
        refused.append(await _time_refusal(auth, ghost, "Corr3ct-horse"))
        t0 = time.monotonic()
        await anyio.to_thread.run_sync(auth._dummy.burn, "Corr3ct-horse")
        burns.append(time.monotonic() - t0)
    # minimum: the intrinsic cost, least disturbed by other load on the machine
    assert min(refused) > min(raw) + 0.5 * min(burns), (raw, refused, burns)
