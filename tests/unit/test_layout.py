"""The package layout is the architecture: layers import only downward.

Reads every module's imports with :mod:`ast` (``TYPE_CHECKING`` blocks and
imports inside functions included), so an upward import fails here before a
reviewer has to spot it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from paths import PACKAGE

# core <- config <- store, upstream <- connectors <- engine <- interfaces <- demo
RANK = {
    "core": 0,
    "config": 1,
    "store": 2,
    "upstream": 2,
    "connectors": 3,
    "engine": 4,
    "interfaces": 5,
    "demo": 6,
}
# The simulator stands beside the product: it may use only core and interfaces.
SIMULATOR_MAY_IMPORT = {"core", "interfaces", "simulator"}
MAX_MODULE_LINES = 600
ROOT_MODULES_ALLOWED = {"__init__.py", "__main__.py"}
MAX_EXTRA_ROOT_MODULES = 3


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _subpackage(path: Path) -> str | None:
    """The top-level subpackage a file lives in; None for the package root."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every ``synchestra...`` module this file imports, with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            if node.module == "synchestra":
                for alias in node.names:
                    yield node.lineno, f"synchestra.{alias.name}"


def _violation(importer: str | None, imported: str) -> str | None:
    """Why ``importer`` (a subpackage) may not import module ``imported``, or None."""
    parts = imported.split(".")
    if parts[0] != "synchestra" or importer is None:
        return None
    if len(parts) == 1:
        return "imports the package root (the public facade sits above every layer)"
    target = parts[1]
    if target == importer:
        return None
    if importer == "simulator":
        return None if target in SIMULATOR_MAY_IMPORT else f"the simulator imports {target}"
    if target == "simulator":
        return "only the demo may use the simulator" if importer != "demo" else None
    if target not in RANK:
        return f"{target} is not a known layer"
    if RANK[target] >= RANK[importer]:
        return f"{importer} (layer {RANK[importer]}) imports {target} (layer {RANK[target]})"
    return None


def test_every_subpackage_is_a_known_layer() -> None:
    found = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert found == set(RANK) | {"simulator"}


def test_imports_point_only_downward() -> None:
    problems = []
    for path in _modules():
        importer = _subpackage(path)
        for line, module in _imported(path):
            why = _violation(importer, module)
            if why is not None:
                problems.append(f"{path.relative_to(PACKAGE)}:{line}: {module}: {why}")
    assert problems == []


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("engine", "synchestra.store.queue", True),
        ("store", "synchestra.engine.eta", False),
        ("store", "synchestra.upstream.client", False),
        ("connectors", "synchestra.engine", False),
        ("engine", "synchestra.interfaces.http", False),
        ("core", "synchestra.config", False),
        ("simulator", "synchestra.interfaces.servers", True),
        ("simulator", "synchestra.store", False),
        ("interfaces", "synchestra", False),
        ("demo", "synchestra.simulator", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, allowed: bool) -> None:
    assert (_violation(importer, imported) is None) is allowed


def test_no_module_is_too_long() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in _modules()
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_package_root_stays_small() -> None:
    extra = {p.name for p in PACKAGE.glob("*.py")} - ROOT_MODULES_ALLOWED
    assert len(extra) <= MAX_EXTRA_ROOT_MODULES, sorted(extra)
