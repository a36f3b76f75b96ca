"""The package has no import cycle, not even one closed by an import inside a function.

Imports point down the layers of docs/architecture.md. A cycle hidden in a function body still means two
modules each know the other, which is what made facts drift; so every ``import`` counts here, wherever it
sits, except those under ``if TYPE_CHECKING:`` (annotations only, never executed).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cloudderm"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every cloudderm module ``name`` imports, at any depth of its code, outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:  # "from a.b import C": C is a name, a.b the module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cloudderm"):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            if base.startswith("cloudderm"):
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    add(candidate if candidate in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert graph.get("cloudderm.classifier")
    found = cycles(graph)
    details = [
        " -> ".join(component)
        + "  ("
        + "; ".join(f"{m} imports {sorted(graph[m] & set(component))}" for m in component)
        + ")"
        for component in found
    ]
    assert not found, "import cycles:\n" + "\n".join(details)


def test_the_contract_modules_import_nothing_above_them() -> None:
    graph = import_graph()
    core = {"cloudderm.core", "cloudderm.errors", "cloudderm.redact"}
    assert graph["cloudderm.core"] == set()
    assert graph["cloudderm.redact"] == set()  # errors scrub their messages through it: it must stay a leaf
    assert graph["cloudderm.errors"] <= core
    for low in ("cloudderm.classifier", "cloudderm.prediction", "cloudderm.images", "cloudderm.taxonomy"):
        above = {
            m for m in graph[low] if m.startswith(("cloudderm.compare", "cloudderm.report", "cloudderm.cli"))
        }
        assert not above, f"{low} imports {sorted(above)}"


def test_reports_read_typed_results_not_the_compare_package() -> None:
    graph = import_graph()
    for module, imported in graph.items():
        if module.startswith("cloudderm.report"):
            reaching = sorted(m for m in imported if m.startswith("cloudderm.compare"))
            assert not reaching, f"{module} imports {reaching}; read cloudderm.results instead"
