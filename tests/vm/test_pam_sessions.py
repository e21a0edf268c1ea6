"""open_sessions with the example's /etc/pam.d/hubkit: a PAM session opens before the server, closes after it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .hubapi import api, start_server, user_token
from .hubproc import EXAMPLE, HubProcess, running_hub

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def recording_service(world_dir: Path) -> Iterator[tuple[str, Path]]:
    """examples/vm/pam.d-hubkit plus a pam_exec line that records each session event."""
    log = world_dir / "sessions.log"
    script = world_dir / "record.sh"
    script.write_text(f'#!/bin/sh\necho "$PAM_TYPE $PAM_USER" >> {log}\n')
    script.chmod(0o755)
    name = f"hubkit-test-{secrets.token_hex(4)}"
    path = Path("/etc/pam.d", name)
    path.write_text((EXAMPLE / "pam.d-hubkit").read_text() + f"session optional pam_exec.so {script}\n")
    try:
        yield name, log
    finally:
        path.unlink()


def test_sessions_wrap_the_server(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str], recording_service: tuple[str, Path]
) -> None:
    service, log = recording_service
    ivy = student("ivy")
    hub = make_hub(auth={"pam": {"service": service, "open_sessions": True}})
    with running_hub(hub):
        token = user_token(hub, ivy)
        start_server(hub, ivy, token)
        assert log.read_text().splitlines() == [f"open_session {ivy}"]
        with api(hub, token) as c:
            r = c.delete(f"/users/{ivy}/server")
            assert r.status_code in (202, 204), r.text
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(log.read_text().splitlines()) < 2:
                time.sleep(0.3)
        assert log.read_text().splitlines() == [f"open_session {ivy}", f"close_session {ivy}"], hub.log()[
            -2000:
        ]
