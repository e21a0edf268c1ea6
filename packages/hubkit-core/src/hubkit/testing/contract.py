"""Checks that keep a plugin inside the plugin contract; use them in a plugin's own tests too.

* :func:`internal_imports`: a plugin may import only the public modules of ``hubkit`` (:data:`PUBLIC`). Anything
  else (``hubkit.spawn``, ``hubkit.storage``...) is the core's to change without notice.
* :func:`process_state`: a plugin keeps its state on the objects the hub builds, never at module or class level
  (module names mutated from functions, ``global`` statements, class attributes assigned from methods), so two
  hubs in one process (tests, replicas) cannot see each other.

Both read the source (``ast``), so they find what a single test run would not exercise.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# What plugins may import from the core: the marker, the data objects and protocols, the errors, the registries
# handed to registration hooks, and the test helpers.
PUBLIC = (
    "hubkit",
    "hubkit.interfaces",
    "hubkit.errors",
    "hubkit.plugins",
    "hubkit.plugins.registry",
    "hubkit.plugins.hookspecs",
)
PUBLIC_PREFIXES = ("hubkit.testing",)
_MUTATORS = frozenset(
    {
        "append",
        "add",
        "update",
        "setdefault",
        "pop",
        "clear",
        "discard",
        "remove",
        "extend",
        "insert",
        "popitem",
    }
)


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def package_files(package: str) -> list[Path]:
    """The ``.py`` files of an importable package (or the one file of a module)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise LookupError(package)
    if spec.submodule_search_locations:
        return sorted(p for d in spec.submodule_search_locations for p in Path(d).rglob("*.py"))
    return [Path(spec.origin)] if spec.origin else []


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _package_imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Modules of ``module``'s own top-level package that it imports (relative or absolute, at any depth)."""
    top = module.split(".")[0]
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == top)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != top:
                continue
            yield target
            yield from (f"{target}.{a.name}" for a in node.names)


def reachable_files(module: str) -> list[Path]:
    """The files of ``module``'s package that importing ``module`` loads (what a hub loads of a plugin)."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run their __init__
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        todo += list(_package_imports(tree, name, path.name == "__init__.py"))
    return sorted(set(seen.values()))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Absolute ``hubkit`` modules a file imports (``from hubkit import x`` counts as ``hubkit.x`` when x is a
    module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "hubkit" or alias.name.startswith("hubkit."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module != "hubkit" and not node.module.startswith("hubkit."):
                continue
            yield node.lineno, node.module
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if _is_module(sub):
                    yield node.lineno, sub


def _public(module: str) -> bool:
    return module in PUBLIC or any(module == p or module.startswith(p + ".") for p in PUBLIC_PREFIXES)


def internal_imports(files: Iterable[Path]) -> list[Finding]:
    """Every import of a non-public ``hubkit`` module in ``files``."""
    out = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, module in _imported(tree):
            if not _public(module):
                out.append(Finding(path, line, f"imports {module}, which is not part of the plugin contract"))
    return out


def process_state(files: Iterable[Path]) -> list[Finding]:
    """State kept at module or class level: ``global`` statements, module-level names mutated inside functions
    (``NAME[k] = v``, ``NAME.append(...)``...), class attributes assigned inside functions (``cls.x = ...``)."""
    out = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        module_names = {
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Global):
                    out.append(Finding(path, node.lineno, f"global {', '.join(node.names)}"))
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _MUTATORS
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in module_names
                ):
                    out.append(Finding(path, node.lineno, f"mutates module-level {node.func.value.id}"))
                elif isinstance(node, ast.Assign | ast.AugAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if (
                            isinstance(t, ast.Subscript)
                            and isinstance(t.value, ast.Name)
                            and t.value.id in module_names
                        ):
                            out.append(Finding(path, node.lineno, f"mutates module-level {t.value.id}"))
                        elif (
                            isinstance(t, ast.Attribute)
                            and isinstance(t.value, ast.Name)
                            and (t.value.id == "cls" or t.value.id in classes)
                        ):
                            out.append(Finding(path, node.lineno, f"assigns class attribute {t.attr}"))
    return out
