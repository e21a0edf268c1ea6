"""A Python that the test accounts can execute, with the packages of the interpreter running the tests.

Servers run as each user (``run_as_user``), so their interpreter must be executable by everyone, like
``/opt/hubkit/venv`` on a real VM. The test venv usually is; a dev venv whose interpreter lives under ``/root``
(pyenv, 0700) is not. Then we build ``.cache/vm/venv`` from Debian's ``python3`` (same major.minor, same ABI)
that sees the test venv's packages through a ``.pth`` file: no download, about a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_VENV = REPO / ".cache" / "vm" / "venv"
SCRIPTS = {
    "hubkit-singleuser": ("hubkit_singleuser.launcher", "main"),
    "jupyter": ("jupyter_core.command", "main"),
}
PROBE = "import hubkit_singleuser, jupyterlab, ipykernel"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def runs_as_nobody(python: Path) -> bool:
    """Can an unprivileged account start ``python`` and import what a server needs?"""
    try:
        proc = subprocess.run(
            [RUNUSER, "-u", "nobody", "--", str(python), "-c", PROBE],
            capture_output=True,
            timeout=120,
            check=False,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _build(base_python: str) -> None:
    shutil.rmtree(CACHE_VENV, ignore_errors=True)
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(CACHE_VENV)], check=True, timeout=120)
    py = CACHE_VENV / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    dirs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    # "import" lines in a .pth run at startup; addsitedir also processes the .pth files there (editables)
    Path(site, "hubkit-test-venv.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs)
    )
    for name, (module, func) in SCRIPTS.items():
        script = CACHE_VENV / "bin" / name
        script.write_text(f"#!{py}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
        script.chmod(0o755)
    for root, dirnames, files in os.walk(REPO / ".cache" / "vm"):
        for n in dirnames + files:
            p = Path(root, n)
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o005 | (0o050 if p.is_dir() else 0))
    for parent in (REPO / ".cache" / "vm", REPO / ".cache"):
        parent.chmod(parent.stat().st_mode | 0o005)


def user_bin() -> tuple[Path | None, str]:
    """The bin directory servers should run from, or ``None`` and why not."""
    own = Path(sys.executable)
    if runs_as_nobody(own):
        return own.parent, ""
    if runs_as_nobody(CACHE_VENV / "bin" / "python"):
        return CACHE_VENV / "bin", ""
    base = shutil.which("python3", path="/usr/bin:/bin")
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    if base is None:
        return None, f"{own} is not executable by other accounts and there is no /usr/bin/python3"
    have = subprocess.run(
        [base, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if have != want:
        return None, f"{own} is not executable by other accounts and {base} is Python {have}, not {want}"
    try:
        _build(base)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not build {CACHE_VENV}: {exc}"
    if not runs_as_nobody(CACHE_VENV / "bin" / "python"):
        return None, f"{CACHE_VENV} was built but an unprivileged account still cannot run a server from it"
    return CACHE_VENV / "bin", ""
