"""Each distribution installs alone with the core into a fresh venv, and shows up in ``hubkit plugins``.

This is what catches a dependency a package forgot to declare: the suite's own venv has everything.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
PLUGINS = [p for p in PACKAGES if p.name != "hubkit-core"]


def _entry_points(pkg: Path) -> dict[str, str]:
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    return dict(meta.get("project", {}).get("entry-points", {}).get("hubkit", {}))


def _venv_with(tmp: Path, *pkgs: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", *map(str, pkgs)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv


def _hubkit(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "hubkit"), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_core_and_each_plugin_install_alone(tmp_path: Path) -> None:
    core = ROOT / "packages" / "hubkit-core"
    jobs = {"hubkit-core": (core,)} | {p.name: (core, p) for p in PLUGINS}

    def build(name: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        return _venv_with(d, *jobs[name])

    with ThreadPoolExecutor(max_workers=2) as pool:
        venvs = dict(zip(jobs, pool.map(build, jobs), strict=True))

    core_help = _hubkit(venvs["hubkit-core"], "--help")
    assert core_help.returncode == 0, core_help.stderr
    assert "usage" in core_help.stdout.lower()
    core_plugins = _hubkit(venvs["hubkit-core"], "plugins")
    assert core_plugins.returncode == 0, core_plugins.stderr
    assert "dummy" in core_plugins.stdout  # the built-in authenticator

    for pkg in PLUGINS:
        eps = _entry_points(pkg)
        if not eps:  # not a hub plugin (hubkit-singleuser runs inside user servers): it imports alone
            module = pkg.name.replace("-", "_")
            check = subprocess.run([str(venvs[pkg.name] / "bin" / "python"), "-c", f"import {module}"])
            assert check.returncode == 0, f"{pkg.name} does not import when installed alone with the core"
            continue
        out = _hubkit(venvs[pkg.name], "plugins")
        assert out.returncode == 0, f"{pkg.name}: {out.stderr}"
        for ep_name in eps:
            assert ep_name in out.stdout, f"{pkg.name}: plugin {ep_name!r} missing from `hubkit plugins`"
        # the listing reflects what is installed: the core-only venv does not show this distribution
        assert pkg.name not in core_plugins.stdout
