"""Every hook spec is documented in docs/plugins.md with its exact signature and has a ``test_hook_<name>``."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from hubkit.plugins import hookspecs
from hubkit.testing import require

REPO = Path(__file__).resolve().parents[3]
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", ".cache", ".nox", "__pycache__"}


def specs() -> list[str]:
    return sorted(n for n, f in vars(hookspecs).items() if n.startswith("hubkit_") and inspect.isfunction(f))


def signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def test_there_are_hooks_for_every_area():
    names = specs()
    assert {
        "hubkit_register_authenticators",
        "hubkit_register_spawners",
        "hubkit_register_storage",
        "hubkit_route_changed",
        "hubkit_pre_spawn",
        "hubkit_post_stop",
        "hubkit_user_created",
        "hubkit_user_deleted",
    } <= set(names)


@pytest.mark.parametrize("name", specs())
def test_hook_documented_with_exact_signature(name):
    doc = REPO / "docs" / "plugins.md"
    require(doc.exists(), f"{doc} (run from a repository checkout)")
    assert f"`{signature(name)}`" in doc.read_text(encoding="utf-8"), (
        f"docs/plugins.md lacks `{signature(name)}`"
    )


def _test_sources() -> str:
    texts = []
    for path in REPO.rglob("test*.py"):
        if SKIP_DIRS & set(path.parts) or "tests" not in path.parts:
            continue
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def test_every_hook_has_a_test():
    require((REPO / "packages").is_dir(), "a repository checkout")
    sources = _test_sources()
    missing = [n for n in specs() if not re.search(rf"def test_hook_{n}\b", sources)]
    assert missing == [], f"hooks without a test_hook_<name> test: {missing}"
