#!/usr/bin/env python3
"""Developer entry point: the README's two commands.

    python3 dev.py demo    # a demo hub at http://127.0.0.1:8000 (local spawner, JupyterLab, hubkit-proxy)
    python3 dev.py test    # system setup (as root), a venv with every package, the whole test suite

Needs only Python 3.11 and pip. Everything else (venvs, system packages when root) is set up here, so a fresh
clone works with these commands alone. Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
PACKAGES = ROOT / "packages"
DEMO_PACKAGES = ["hubkit-core", "hubkit-proxy", "hubkit-spawn-local", "hubkit-singleuser"]
# Order matters only for readability; pip resolves the graph.
TEST_EXTRAS = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "anyio>=4.4",
    "hypothesis>=6",
    "playwright>=1.40",
    "hypercorn>=0.16",
    "gunicorn>=22",
    "schemathesis>=3.30",
    "jupyterhub==6.1.1",
    "jupyterhub-idle-culler",
    "jupyterlab>=4",
    "asyncpg>=0.29",
    "psycopg2-binary>=2.9",  # JupyterHub on PostgreSQL (tests/migrate)
    "websockets>=12",
    "psutil>=5.9",
    "ruff>=0.5",
    "import-linter>=2.1",
    "mypy>=1.10",
]


# Folders that run the machine's one kubelet (so never two at once) on binaries .ci/setup/k8s.sh may still be
# building in the background (uncached, many minutes; the tests wait for it).
KUBELET_FOLDERS = ("packages/hubkit-spawn-k8s/tests", "tests/k8s")


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    say("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def all_packages() -> list[Path]:
    return sorted(p.parent for p in PACKAGES.glob("*/pyproject.toml"))


def has_test_extra(pkg: Path) -> bool:
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    return "test" in meta.get("project", {}).get("optional-dependencies", {})


def ensure_venv(path: Path) -> Path:
    py = path / "bin" / "python"
    if not py.exists():
        run([sys.executable, "-m", "venv", str(path)])
        run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    return py


def pip_install(py: Path, args: list[str]) -> None:
    run([str(py), "-m", "pip", "install", "-q", *args])


def system_setup() -> None:
    """Run every idempotent ``.ci/setup/*.sh`` (apt packages, daemons, npm, images). Needs root."""
    scripts = sorted((ROOT / ".ci" / "setup").glob("*.sh"))
    if not scripts:
        return
    if os.geteuid() != 0:
        say("not root: skipping system setup; tests needing missing components will skip (and fail in CI)")
        return
    env = dict(os.environ, REPO=str(ROOT))
    for script in scripts:
        run(["bash", str(script)], env=env)


def cmd_demo(args: argparse.Namespace) -> int:
    venv = ROOT / ".venv"
    py = ensure_venv(venv)
    pkgs = [str(PACKAGES / p) for p in DEMO_PACKAGES if (PACKAGES / p / "pyproject.toml").exists()]
    pip_install(py, [*[x for p in pkgs for x in ("-e", p)], "jupyterlab>=4"])
    config = ROOT / "examples" / "demo" / "hubkit.toml"
    data = ROOT / "demo-data"
    data.mkdir(exist_ok=True)
    print(
        "\n  hubkit demo: open http://127.0.0.1:8000 and log in with any username (no password).\n"
        "  Press Start, and JupyterLab opens at /user/<name>/lab. Ctrl-C stops the hub;\n"
        "  user servers keep running until stopped from the home page.\n",
        flush=True,
    )
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    hubkit = venv / "bin" / "hubkit"
    os.chdir(data)
    os.execve(str(hubkit), [str(hubkit), "-f", str(config), *args.hub_args], env)
    return 0  # not reached


def test_venv() -> Path:
    venv = ROOT / ".venv-test"
    py = ensure_venv(venv)
    editable: list[str] = []
    for pkg in all_packages():
        editable += ["-e", f"{pkg}[test]" if has_test_extra(pkg) else str(pkg)]
    example = ROOT / "examples" / "hubkit-example-plugin"
    if (example / "pyproject.toml").exists():
        editable += ["-e", str(example)]
    pip_install(py, [*editable, *TEST_EXTRAS])
    return py


def test_roots() -> list[Path]:
    """One pytest run per test folder: packages keep their own conftest and helper modules apart."""
    roots = [p / "tests" for p in all_packages() if (p / "tests").is_dir()]
    example_tests = ROOT / "examples" / "hubkit-example-plugin" / "tests"
    if example_tests.is_dir():
        roots.append(example_tests)
    top = ROOT / "tests"
    if top.is_dir():
        roots += sorted(d for d in top.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))
    return roots


def _junit_counts(path: Path) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    if not path.exists():
        return counts
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0))
        errors = int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        counts["failed"] += failed
        counts["errors"] += errors
        counts["skipped"] += skipped
        counts["passed"] += tests - failed - errors - skipped
    return counts


DURATIONS = ROOT / "tests" / "durations.json"  # seconds per folder from a full run: the longest start first


def _slug(root: Path) -> str:
    return str(root.relative_to(ROOT)).replace("/", "_")


def _known_durations() -> dict[str, float]:
    for path in (ROOT / ".cache" / "test-durations.json", DURATIONS):
        try:
            return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            continue
    return {}


def _save_durations(measured: dict[str, float]) -> None:
    known = _known_durations()
    known.update({k: round(v) for k, v in measured.items()})
    path = ROOT / ".cache" / "test-durations.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(known.items())), indent=1) + "\n")


def _uses_kubelet(root: Path) -> bool:
    return root.relative_to(ROOT).as_posix() in KUBELET_FOLDERS


def _k8s_built() -> bool:
    """False while the Kubernetes binaries this clone links to are not complete (a background build runs)."""
    link = ROOT / ".cache" / "k8s"
    return not link.is_symlink() or (link / "complete").exists()


def _next_folder(queue: list[Path], running: dict[Path, Any]) -> Path | None:
    """The first folder of ``queue`` that may start now. A kubelet folder waits while another runs, and while
    the binaries are being built it waits for every other folder to have started: the build gets the time."""
    for root in queue:
        if _uses_kubelet(root):
            if any(_uses_kubelet(r) for r in running):
                continue
            if not _k8s_built() and any(not _uses_kubelet(r) for r in queue):
                continue
        return root
    return None


def run_folders(
    py: Path, env: dict[str, str], roots: list[Path], reports: Path, pytest_args: list[str], jobs: int
) -> dict[Path, tuple[int, float]]:
    """One pytest process per folder, ``jobs`` at a time, longest first (unknown folders count as long; the
    Kubernetes folders as :func:`_next_folder` allows). Each
    folder's output is kept in a file and printed whole when it ends, so the log reads folder by folder.
    Folders in parallel get their own ``--basetemp``: pytest's cleanup of old temp dirs must not reach another
    folder's."""
    known = _known_durations()
    queue = sorted(roots, key=lambda r: -known.get(str(r.relative_to(ROOT)), 1e9))
    own_basetemp = jobs > 1 and not any(a.startswith("--basetemp") for a in pytest_args)
    running: dict[Path, tuple[subprocess.Popen[bytes], float, Path]] = {}
    done: dict[Path, tuple[int, float]] = {}
    while queue or running:
        while queue and len(running) < jobs:
            root = _next_folder(queue, running)
            if root is None:
                break
            queue.remove(root)
            slug = _slug(root)
            extra = [f"--basetemp={reports / ('tmp-' + slug)}"] if own_basetemp else []
            cmd = [
                str(py),
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                f"--junitxml={reports / (slug + '.xml')}",
            ]
            cmd += [str(root), *extra, *pytest_args]
            say("$ " + " ".join(cmd))
            log = reports / f"{slug}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            running[root] = (proc, time.monotonic(), log)
        time.sleep(0.5)
        for root, (proc, t0, log) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del running[root]
            seconds = time.monotonic() - t0
            sys.stdout.write(log.read_text(errors="replace"))
            counts = _junit_counts(reports / f"{_slug(root)}.xml")
            say(f"{root.relative_to(ROOT)}: {counts} in {seconds:.0f}s (exit {rc})")
            done[root] = (rc, seconds)
    return done


def cmd_test(args: argparse.Namespace) -> int:
    if not args.no_setup:
        system_setup()
    py = test_venv()
    venv_bin = py.parent
    env = dict(
        os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONDONTWRITEBYTECODE="1"
    )
    lint = subprocess.run(
        [
            str(venv_bin / "ruff"),
            "check",
            "packages",
            "tests",
            "examples",
            "benchmarks",
            "dev.py",
            "noxfile.py",
        ],
        cwd=ROOT,
        env=env,
    )
    # the core's formatting, as the nox lint session checks it
    fmt = subprocess.run([str(venv_bin / "ruff"), "format", "--check", "packages/hubkit-core/src"], cwd=ROOT, env=env)
    # the core's import layers and the plugin contract (pyproject.toml [tool.importlinter]); strict types
    layers = subprocess.run([str(venv_bin / "lint-imports")], cwd=ROOT, env=env)
    sources = [str(p / "src") for p in all_packages() if (p / "src").is_dir()]
    types = subprocess.run([str(venv_bin / "mypy"), *sources], cwd=ROOT, env=env)
    totals = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    bad_roots: list[str] = []
    reports = Path(tempfile.mkdtemp(prefix="hubkit-junit-"))
    roots = [r for r in test_roots() if not args.only or any(o in str(r) for o in args.only)]
    started = time.monotonic()
    durations = run_folders(py, env, roots, reports, args.pytest_args, max(1, args.jobs))
    for root, (rc, _seconds) in durations.items():
        counts = _junit_counts(reports / f"{_slug(root)}.xml")
        for k in totals:
            totals[k] += counts[k]
        if rc not in (0, 5):  # 5: nothing collected (e.g. every test deselected)
            bad_roots.append(str(root.relative_to(ROOT)))
    _save_durations({str(r.relative_to(ROOT)): sec for r, (_, sec) in durations.items()})
    say(f"suite took {time.monotonic() - started:.0f}s")
    checks = [("ruff", lint), ("ruff format", fmt), ("lint-imports", layers), ("mypy", types)]
    if not args.only and not args.no_guard:
        # after the folders: the machine is quiet then (and a background Kubernetes build has finished)
        say("CPU regression guard: hub and proxy CPU per request/spawn against benchmarks/baseline.json")
        checks.append(("guard", subprocess.run([str(py), "benchmarks/guard/run.py"], cwd=ROOT, env=env)))
    for name, check in checks:
        if check.returncode != 0:
            bad_roots.append(name)
    if bad_roots:
        say("FAILED: " + ", ".join(bad_roots))
    failed = totals["failed"] + totals["errors"]
    print(f"{totals['passed']} passed, {failed} failed, {totals['skipped']} skipped", flush=True)
    return 1 if bad_roots or failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="start the demo hub at http://127.0.0.1:8000")
    demo.add_argument("hub_args", nargs=argparse.REMAINDER, help="extra arguments for `hubkit`")
    demo.set_defaults(func=cmd_demo)
    test = sub.add_parser("test", help="set up and run the whole test suite")
    test.add_argument("--no-setup", action="store_true", help="skip .ci/setup/*.sh")
    test.add_argument(
        "--no-guard", action="store_true", help="skip the CPU regression guard (benchmarks/guard/run.py)"
    )
    test.add_argument(
        "--only", action="append", default=[], help="run only test folders containing this text"
    )
    test.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("HUBKIT_TEST_JOBS", "2")),
        help="test folders run at once (default 2, or $HUBKIT_TEST_JOBS)",
    )
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra arguments for pytest")
    test.set_defaults(func=cmd_test)
    args, unknown = parser.parse_known_args()
    if unknown and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "test":
        args.pytest_args = [a for a in [*unknown, *args.pytest_args] if a != "--"]
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
