"""No import circles in src/cft: a lower module never imports, even lazily, one that imports it.

The graph is read from the syntax trees, so every import counts wherever it stands: at a module's top,
inside a function (a lazy import is still a dependency, only a later one) and under
`if TYPE_CHECKING:`. An edge goes to the most specific module an import names: `from cft.training
import data` to `cft.training.data`, `from cft.training import TrainConfig` to `cft.training` (its
`__init__`); relative imports are resolved against the importing module's package. The packages above
the importing module are not edges, although Python runs their `__init__` first: a package that
re-exports its submodules would otherwise form a circle with each submodule that imports a sibling.
Functions that the registries name as "module:function" strings are loaded by importlib in the job that
calls them; they are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cft"


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__.py)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` (in `path`) imports anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import name`: the submodule pkg.name where there is one, else pkg itself.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # `import cft.x.y` of a name inside a module, or of a module outside the package.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    modules = module_files(package_dir)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def circular_groups(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of two or more modules that import each other, directly or through the others:
    the strongly connected components of the graph (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                lowest[module] = min(lowest[module], lowest[target])
            elif target in stack:
                lowest[module] = min(lowest[module], index[target])
        if lowest[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def import_circles(graph: dict[str, set[str]]) -> list[str]:
    """One line per circular group: the shortest path from its first module back to itself, then
    every module of the group (a group can hold several circles; breaking one may leave another)."""
    return sorted(f"{' -> '.join(shortest_circle(graph, group))} (importing each other: {', '.join(sorted(group))})"
                  for group in circular_groups(graph))


def shortest_circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """Breadth first from the group's first module until an edge leads back to it."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while True:
        module = frontier.pop(0)
        for target in sorted(graph[module] & group):
            if target == start:
                return paths[module] + [start]
            if target not in paths:
                paths[target] = paths[module] + [target]
                frontier.append(target)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_every_kind_of_import_is_an_edge_and_a_circle_is_named(tmp_path):
    package = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import Thing\n",
        "pkg/high.py": "import os\n\ndef later():\n    from . import low\n    return low\n",
        "pkg/sub/__init__.py": "from .one import value\n",
        "pkg/sub/one.py": "from pkg.sub import two\nfrom ..low import name\nvalue = two\n",
        "pkg/sub/two.py": "import pkg.sub.one\nfrom pkg import sub\n",
        "pkg/top.py": "import pkg.high.Thing\nfrom pkg import sub as imported\n",
    })
    assert import_graph(package) == {
        "pkg": set(),
        "pkg.low": {"pkg.high"},               # under TYPE_CHECKING
        "pkg.high": {"pkg.low"},               # inside a function, relative
        "pkg.sub": {"pkg.sub.one"},            # relative, from a package's __init__
        "pkg.sub.one": {"pkg.sub.two", "pkg.low"},  # `from pkg import submodule`; two levels up
        "pkg.sub.two": {"pkg.sub.one", "pkg.sub"},
        "pkg.top": {"pkg.high", "pkg.sub"},    # a name inside a module resolves to the module
    }
    assert import_circles(import_graph(package)) == [
        "pkg.high -> pkg.low -> pkg.high (importing each other: pkg.high, pkg.low)",
        "pkg.sub -> pkg.sub.one -> pkg.sub.two -> pkg.sub (importing each other: pkg.sub, pkg.sub.one, pkg.sub.two)",
    ]


def test_cft_has_no_import_cycles():
    graph = import_graph(PACKAGE)
    # The scan reads the package: the modules that raise config errors import them from below it.
    assert {"cft.errors"} <= graph["cft.config"] & graph["cft.transfer.choices"] & graph["cft.transfer.openended"]
    assert "cft.jobs" in graph["cft.baselines.ats"] and "cft.baselines.ats" in graph["cft.variants"]
    circles = import_circles(graph)
    assert not circles, "import circles in src/cft:\n" + "\n".join(circles)
