"""The systemd unit passes ``systemd-analyze verify``; the unit and the supervisor program agree on what matters."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from hubkit.testing import require

from .hubproc import EXAMPLE, VENV_BIN

pytestmark = [pytest.mark.timeout(120)]


def unit_for_this_machine(tmp_path: Path) -> Path:
    """The example unit with the VM's install paths pointed at this machine's (verify checks ExecStart exists)."""
    text = (EXAMPLE / "hubkit.service").read_text()
    assert "/opt/hubkit/venv/bin/hubkit" in text
    unit = tmp_path / "hubkit.service"
    unit.write_text(text.replace("/opt/hubkit/venv/bin/hubkit", str(VENV_BIN / "hubkit")))
    return unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze missing (apt-get install systemd)")
    unit = unit_for_this_machine(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    # warnings (unknown keys, bad values) do not change the exit code: there must be none about this unit
    complaints = [line for line in proc.stderr.splitlines() if "hubkit.service" in line]
    assert complaints == [], complaints


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: the same unit with a mistake is refused."""
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze missing (apt-get install systemd)")
    unit = unit_for_this_machine(tmp_path)
    unit.write_text(unit.read_text().replace(f"ExecStart={VENV_BIN}/hubkit", "ExecStart=hubkit-not-a-path/x"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode != 0


def _unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(EXAMPLE / "hubkit.service")
    return cp


def test_unit_keeps_servers_and_proxy_alive_and_restarts() -> None:
    svc = _unit()["Service"]
    assert svc["KillMode"] == "process"  # control-group/mixed would kill every user's server with the hub
    assert svc["Restart"] == "always"
    assert _unit()["Unit"]["StartLimitIntervalSec"] == "0"
    assert svc["ExecStart"].endswith("hubkit -f /etc/hubkit/hubkit.toml")


def test_supervisor_program_matches_the_unit() -> None:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(EXAMPLE / "supervisor-hubkit.conf")
    prog = cp["program:hubkit"]
    assert prog["command"] == _unit()["Service"]["ExecStart"]
    assert prog["autorestart"] == "true"
    assert prog["stopasgroup"] == prog["killasgroup"] == "true"


def _config_show(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "hubkit"), "config", "show", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_config_validates_with_every_backend_section() -> None:
    """`hubkit config show` validates [auth.pam], [spawner.local], [proxy] with the installed plugins' models."""
    proc = _config_show(EXAMPLE / "hubkit.toml")
    assert proc.returncode == 0, proc.stderr
    for section in ("[auth.pam]", "[spawner.local]"):
        assert section in proc.stdout
    assert 'admin_groups = ["sudo"]' in proc.stdout and "run_as_user = true" in proc.stdout


def test_a_typo_in_the_example_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "hubkit.toml"
    bad.write_text((EXAMPLE / "hubkit.toml").read_text().replace("allowed_groups", "allowed_grups"))
    proc = _config_show(bad)
    assert proc.returncode == 2
    assert "auth.pam.allowed_grups" in proc.stderr
