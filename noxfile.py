"""nox sessions. Packages are discovered by glob, never listed by hand.

    nox -s "tests(package='hubkit-proxy')"   # one package, alone with the core, in its own venv
    nox -s tests                              # every package, each in its own venv (a missing dependency shows)
    nox -s integration                        # all packages together + top-level tests/
    nox -s lint layers typecheck example_plugin demo
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
CORE = "hubkit-core"
TEST_DEPS = ["pytest>=8", "pytest-timeout>=2.3", "anyio>=4.4", "hypothesis>=6"]

nox.options.sessions = ["lint", "layers", "typecheck", "tests", "example_plugin"]
nox.options.reuse_existing_virtualenvs = True


def _install_pkg(session: nox.Session, name: str) -> None:
    path = ROOT / "packages" / name
    optional = tomllib.loads((path / "pyproject.toml").read_text()).get("project", {}).get("optional-dependencies", {})
    extra = "[test]" if "test" in optional else ""
    session.install("-e", f"{path}{extra}")


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """A package's own tests, installed alone with the core."""
    _install_pkg(session, CORE)
    if package != CORE:
        _install_pkg(session, package)
    session.install(*TEST_DEPS)
    session.run("pytest", "--import-mode=importlib", str(ROOT / "packages" / package / "tests"), *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Everything installed together; the cross-package tests in tests/."""
    for name in PACKAGES:
        _install_pkg(session, name)
    session.install(
        *TEST_DEPS, "playwright", "jupyterlab>=4", "jupyterhub==6.1.1", "jupyterhub-idle-culler", "psycopg2-binary"
    )
    session.run("pytest", "--import-mode=importlib", str(ROOT / "tests"), *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", "packages", "tests", "examples", "benchmarks", "dev.py", "noxfile.py")
    session.run("ruff", "format", "--check", "packages/hubkit-core/src")


@nox.session
def layers(session: nox.Session) -> None:
    """The import-layer contracts of pyproject.toml [tool.importlinter] (the core's layers, no cycles, no web
    framework below the web layer, plugins confined to the public contract); needs every package installed."""
    for name in PACKAGES:
        _install_pkg(session, name)
    session.install("import-linter>=2.1")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict, from the root pyproject) over every package's sources."""
    for name in PACKAGES:
        _install_pkg(session, name)
    session.install("mypy>=1.10")
    for name in PACKAGES:
        session.run("mypy", str(ROOT / "packages" / name / "src"))


@nox.session
def example_plugin(session: nox.Session) -> None:
    """The example plugin builds, installs with the core, and passes its tests."""
    _install_pkg(session, CORE)
    example = ROOT / "examples" / "hubkit-example-plugin"
    session.install("-e", str(example), *TEST_DEPS)
    session.run("hubkit", "plugins")
    session.run("pytest", "--import-mode=importlib", str(example / "tests"))


@nox.session
def demo(session: nox.Session) -> None:
    """The demo hub (same as `python3 dev.py demo`)."""
    session.run("python3", str(ROOT / "dev.py"), "demo", *session.posargs, external=True)
