"""Fixtures: real OS accounts (removed afterwards), a HubInfo, throw-away PAM service files."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator

import pytest
from hubkit.plugins.registry import HubInfo
from hubkit.testing import require
from hubkit_auth_pam.testing import OSAccounts, new_accounts


@pytest.fixture
def os_accounts() -> Iterator[OSAccounts]:
    require(os.geteuid() == 0, "PAM account tests create OS accounts and need root")
    require(shutil.which("useradd") is not None, "useradd (passwd package) is not installed")
    accts = new_accounts()
    try:
        yield accts
    finally:
        accts.cleanup()


@pytest.fixture
def hub_info(tmp_path: object) -> HubInfo:
    return HubInfo(
        hub_id=f"pamtest-{secrets.token_hex(4)}",
        data_dir=str(tmp_path),
        hub_api_url="http://127.0.0.1:8081/hub/api",
        hub_url="http://127.0.0.1:8081",
        public_url="http://127.0.0.1:8000",
        is_root=os.geteuid() == 0,
    )


@pytest.fixture
def pam_service_file() -> Iterator[Callable[[str], str]]:
    """Write a throw-away /etc/pam.d service; returns its name. Removed afterwards."""
    made: list[str] = []

    def write(body: str) -> str:
        name = f"hubkit-test-{secrets.token_hex(4)}"
        path = os.path.join("/etc/pam.d", name)
        with open(path, "w") as f:
            f.write(body)
        made.append(path)
        return name

    yield write
    for path in made:
        os.unlink(path)
