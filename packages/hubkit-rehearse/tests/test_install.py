"""hubkit-rehearse is a client: it installs and runs without hubkit-core or any hub server dependency, and
with hubkit-core installed it is also ``hubkit rehearse`` (entry-point group ``hubkit.commands``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rehearse_helpers import BIN, have_hubkit, require

PACKAGE = Path(__file__).resolve().parents[1]
SERVER_SIDE = ("hubkit", "starlette", "uvicorn", "sqlalchemy", "alembic", "jupyterhub", "tornado")


@pytest.mark.timeout(900)
def test_installs_and_runs_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", str(PACKAGE)],
        check=True,
        capture_output=True,
        timeout=800,
    )
    probe = f"import importlib.util as u; print(' '.join(m for m in {SERVER_SIDE!r} if u.find_spec(m)))"
    found = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert found == [], f"server-side packages came with hubkit-rehearse: {found}"
    for cmd in (
        [str(py), "-m", "hubkit_rehearse", "--help"],
        [str(venv / "bin" / "hubkit-rehearse"), "--help"],
    ):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "--ramp-shape" in out.stdout and "--compare" in out.stdout
    # and it renders its report alone: matplotlib (Agg) and rich are its own dependencies
    check = (
        "from pathlib import Path; from hubkit_rehearse.record import RunRecord; "
        "from hubkit_rehearse.cli import write_outputs; "
        "r = RunRecord(hub_url='http://h/', hub_version='6.1.1', started_at='t', plan={}); "
        f"print(sorted(p.name for p in write_outputs(r, Path({str(tmp_path / 'o')!r})).values()))"
    )
    out = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['report.html', 'result.json', 'timeline.png']"


def test_hubkit_cli_dispatches_rehearse() -> None:
    require(have_hubkit(), "hubkit-core is not installed")
    top = subprocess.run([str(BIN / "hubkit"), "--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and "rehearse" in top.stdout
    sub = subprocess.run(
        [str(BIN / "hubkit"), "rehearse", "--help"], capture_output=True, text=True, timeout=60
    )
    assert sub.returncode == 0 and "usage: hubkit rehearse" in sub.stdout and "--ramp-shape" in sub.stdout
    # the subcommand does not load the hub's config: no hubkit.toml is needed to rehearse, and its own
    # flag errors come back as rehearse errors (exit 2)
    bad = subprocess.run(
        [str(BIN / "hubkit"), "rehearse", "http://127.0.0.1:9/", "--users", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "hubkit rehearse: error: --users" in bad.stderr
