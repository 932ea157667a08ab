"""The package's import structure (issue #11): no import cycle among modules, the connection
layer imports no feature, and no module imports another folder's ``_private`` names.

Read from the source with :mod:`ast`, so a cycle fails here before it fails at some import
order in production. Imports under ``if TYPE_CHECKING:`` are annotations and never count. The
cycle check counts the imports that run when a module is imported; features may look the cache
backend up inside a function (``aliases.backend_for_alias``), but ``connection/`` may not even
do that.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "django_rediskit"
NAME = "django_rediskit"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, lazy: bool = False) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for each runtime import in ``module``; with
    ``lazy``, the imports inside its functions too."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if not lazy and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue  # runs when called, not when imported
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, []) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [alias.name for alias in child.names]
                found.append((base, names))
                # ``from package import module`` imports the submodule
                found.extend(
                    (f"{base}.{name}", []) for name in names if f"{base}.{name}" in MODULES
                )
            visit(child)

    visit(tree)
    return [(target, names) for target, names in found if target.split(".")[0] == NAME]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = set()
        for target, _names in _imports(module):
            while target and target not in MODULES:  # a name inside a module
                target = target.rpartition(".")[0]
            if target and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    return found


def _is_package_parent(importer: str, target: str) -> bool:
    """A package's ``__init__`` re-exporting its own submodules is not a cycle of design."""
    return target.startswith(importer + ".") and MODULES[importer].name == "__init__.py"


def test_no_import_cycle() -> None:
    graph = {
        module: {target for target in targets if not _is_package_parent(module, target)}
        for module, targets in _graph().items()
    }
    assert _cycles(graph) == []


def test_the_checker_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or MODULES[module].name == "__init__.py" else ""


MODULES_FOLDERS = {module.split(".")[1] for module in MODULES if module.count(".") >= 2}
#: What every layer may feed: the metrics events, which import nothing of the package.
SINKS = {f"{NAME}.metrics", f"{NAME}.metrics.events"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(f"{NAME}.connection")))
def test_the_connection_layer_imports_no_feature(module: str) -> None:
    """Not even inside a function: the bottom layer never reaches back up."""
    upward = {
        target
        for target, _names in _imports(module, lazy=True)
        if target.count(".") >= 1
        and target.split(".")[1] in MODULES_FOLDERS
        and target.split(".")[1] != "connection"
    }
    assert upward <= SINKS, upward


@pytest.mark.parametrize("sink", sorted(SINKS))
def test_the_metrics_sink_imports_nothing_of_the_package(sink: str) -> None:
    assert _imports(sink) == []


def test_no_module_imports_another_folders_private_names() -> None:
    offenders = []
    for module in MODULES:
        for target, names in _imports(module):
            private = [name for name in names if name.startswith("_") and not name.startswith("__")]
            target_module = target
            while target_module and target_module not in MODULES:
                target_module = target_module.rpartition(".")[0]
            if private and target_module and _folder(target_module) != _folder(module):
                offenders.append(f"{module} imports {private} from {target}")
    assert offenders == []
