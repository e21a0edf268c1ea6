"""Started as an ordinary user, the example hub stops at once and says why (PAM cannot read /etc/shadow)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .hubproc import dump_toml, example_config

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def test_hub_as_non_root_says_it_cannot_check_passwords(world_dir: Path, user_bin: Path) -> None:
    data = world_dir / "data"
    data.mkdir()
    shutil.chown(data, "nobody", "nogroup")
    cfg = example_config(
        hub={
            "port": 0,  # it stops before binding anything; 0 would be bound and reported if it did not
            "hub_port": 0,
            "data_dir": str(data),
            "db_url": f"sqlite+aiosqlite:///{data}/hubkit.sqlite",
        },
        auth={"pam": {"create_system_users": False}},
        proxy={"backend": "none"},
    )
    path = world_dir / "hubkit.toml"
    path.write_text(dump_toml(cfg))
    path.chmod(0o644)
    proc = subprocess.run(
        [
            RUNUSER,
            "-u",
            "nobody",
            "--",
            str(user_bin / "python"),
            "-c",
            "import sys; from hubkit.cli import main; sys.exit(main(sys.argv[1:]))",
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=str(world_dir),
        env={"PATH": f"{user_bin}:/usr/bin:/bin", "HOME": str(world_dir)},
    )
    assert os.access("/etc/shadow", os.R_OK)  # we are root; nobody is not
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "not root" in proc.stderr and "/etc/shadow" in proc.stderr, proc.stderr[-2000:]
