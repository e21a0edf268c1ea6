"""Startup refuses configurations that cannot work, with a message that says what to do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hubkit.errors import ConfigError
from hubkit.plugins.hooks import collect_registries
from hubkit.plugins.manager import build_plugin_manager
from hubkit.plugins.registry import HubInfo
from hubkit.testing import require
from hubkit_auth_pam import PAMAuthenticator, PAMConfig
from pydantic import ValidationError

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def test_registered_as_pam_backend() -> None:
    pm = build_plugin_manager(allow=["pam"])
    entry = collect_registries(pm).authenticators.get("pam")
    assert entry.factory is PAMAuthenticator
    assert entry.config_model is PAMConfig


def test_config_rejects_typos_and_paths() -> None:
    with pytest.raises(ValidationError, match="allowed_group"):
        PAMConfig.model_validate({"allowed_group": ["x"]})
    with pytest.raises(ValidationError, match=r"file name in /etc/pam\.d"):
        PAMConfig(service="../shadow")


async def test_missing_service_is_a_config_error(hub_info: HubInfo) -> None:
    auth = PAMAuthenticator(PAMConfig(service="hubkit-no-such-service"), hub_info)
    with pytest.raises(ConfigError, match=r"hubkit-no-such-service.*not found.*'other'"):
        await auth.startup()


DROP_AND_START = textwrap.dedent(
    """
    import os, anyio, anyio._backends._asyncio, pamela, hubkit_auth_pam.plugin
    from hubkit.errors import ConfigError
    from hubkit.plugins.registry import HubInfo
    from hubkit_auth_pam import PAMAuthenticator, PAMConfig
    auth = PAMAuthenticator(PAMConfig(), HubInfo("t", "/tmp", "", "", ""))
    os.setgroups([]); os.setgid(65534); os.setuid(65534)  # nobody, after every import
    try:
        anyio.run(auth.startup)
    except ConfigError as exc:
        print("CONFIGERROR", exc)
    else:
        print("STARTED")
    """
)


def test_non_root_hub_without_shadow_access_says_so() -> None:
    require(os.geteuid() == 0, "needs root to drop to an unprivileged uid")
    proc = subprocess.run(
        [sys.executable, "-c", DROP_AND_START], capture_output=True, text=True, timeout=60, check=False
    )
    assert "CONFIGERROR" in proc.stdout, proc.stdout + proc.stderr
    assert "not root" in proc.stdout and "/etc/shadow" in proc.stdout and "shadow' group" in proc.stdout


def test_non_root_can_opt_out_of_shadow_check() -> None:
    require(os.geteuid() == 0, "needs root to drop to an unprivileged uid")
    script = DROP_AND_START.replace("PAMConfig()", "PAMConfig(require_shadow_access=False)")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert "STARTED" in proc.stdout, proc.stdout + proc.stderr
