"""The code base's import graph, read with `ast` from every module of the four packages.

- Layering: `ledger` imports nothing of the other packages; `meter_signing` and
  `attestation` build on `ledger` only; `api` may use them all. Every import counts here,
  at module level, inside functions and under `if TYPE_CHECKING:` alike.
- No module imports a private name (`_name`) of another module, nor reaches one as an
  attribute of a module it imported.
- No import cycles among the imports that run when a module is loaded (module level,
  outside `if TYPE_CHECKING:`): a cycle makes what a module sees depend on who imported it
  first.

Each failure lists every offending import with its file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ledger", "meter_signing", "attestation", "api")
ALLOWED = {
    "ledger": {"ledger"},
    "meter_signing": {"ledger", "meter_signing"},
    "attestation": {"ledger", "attestation"},
    "api": set(PACKAGES),
}


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module."""
    target: str
    """The imported module (for `from m import name`: `m.name` if that is a module, else `m`)."""
    name: str | None
    """For `from m import name` where `name` is not a module: the name."""
    line: int
    at_load: bool
    """Runs when the module is loaded: module level, not under `if TYPE_CHECKING:`."""

    def where(self) -> str:
        return f"{path_of(self.module).relative_to(REPO)}:{self.line}"


def path_of(module: str) -> Path:
    base = REPO.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = project_modules()


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def walk(node: ast.AST, *, at_load: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it runs at load time (module level, outside TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield child, at_load
            yield from walk(child, at_load=False)
        elif isinstance(child, ast.If) and is_type_checking(child.test):
            yield child, at_load
            for statement in child.body:
                yield statement, False
                yield from walk(statement, at_load=False)
            for statement in child.orelse:
                yield statement, at_load
                yield from walk(statement, at_load=at_load)
        else:
            yield child, at_load
            yield from walk(child, at_load=at_load)


def resolve(module: str, level: int, target: str | None) -> str:
    """The absolute module of a (possibly relative) `from … import`."""
    if level == 0:
        assert target is not None
        return target
    package = module if path_of(module).name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{target}" if target else package


def imports_of(module: str, source: str | None = None) -> list[Import]:
    path = MODULES.get(module)
    text = source if source is not None else path.read_text(encoding="utf-8") if path else ""
    tree = ast.parse(text)
    found = []
    for node, at_load in walk(tree, at_load=True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, None, node.lineno, at_load))
        elif isinstance(node, ast.ImportFrom):
            source = resolve(module, node.level, node.module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    found.append(Import(module, submodule, None, node.lineno, at_load))
                else:
                    found.append(Import(module, source, alias.name, node.lineno, at_load))
    return found


IMPORTS = {module: imports_of(module) for module in MODULES}


def package_of(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def is_project(module: str) -> bool:
    return package_of(module) in PACKAGES


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_they_build_on(package: str) -> None:
    wrong = [
        f"{item.where()}: {item.module} imports {item.target}"
        for module, items in IMPORTS.items()
        if package_of(module) == package
        for item in items
        if is_project(item.target) and package_of(item.target) not in ALLOWED[package]
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def private_imports(items: list[Import]) -> list[Import]:
    wrong = []
    for item in items:
        if not is_project(item.target) or item.target == item.module:
            continue
        private_module = any(is_private(part) for part in item.target.split("."))
        if private_module or (item.name is not None and is_private(item.name)):
            wrong.append(item)
    return wrong


def test_no_module_imports_a_private_name_of_another() -> None:
    wrong = [
        f"{item.where()}: {item.module} imports {item.target}"
        + (f".{item.name}" if item.name else "")
        for items in IMPORTS.values()
        for item in private_imports(items)
    ]
    wrong += [
        f"{MODULES[module].relative_to(REPO)}:{line}: {module} uses {used}"
        for module, path in MODULES.items()
        for line, used in private_attributes(module, path.read_text(encoding="utf-8"))
    ]
    assert not wrong, "private names used across modules:\n" + "\n".join(wrong)


def private_attributes(module: str, source: str) -> list[tuple[int, str]]:
    """(line, `other._name`) where `other` is a project module bound by an import."""
    wrong = []
    tree = ast.parse(source)
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_project(alias.name):
                    # `import a.b` binds `a`; `import a.b as c` binds `c` to `a.b`.
                    name = alias.asname or alias.name.split(".")[0]
                    bound[name] = alias.name if alias.asname else name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    bound[alias.asname or alias.name] = submodule
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and bound[node.value.id] != module
            and is_private(node.attr)
        ):
            wrong.append((node.lineno, f"{bound[node.value.id]}.{node.attr}"))
    return wrong


def load_time_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, items in IMPORTS.items():
        for item in items:
            if item.at_load and item.target in MODULES and item.target != module:
                graph[module].add(item.target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (no recursion limit on deep import chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
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
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
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


def test_no_import_cycles_at_load_time() -> None:
    graph = load_time_graph()
    cycles = strongly_connected(graph)
    described = []
    for component in cycles:
        members = set(component)
        edges = [
            f"  {item.where()}: {item.module} -> {item.target}"
            for module in component
            for item in IMPORTS[module]
            if item.at_load and item.target in members and item.target != module
        ]
        described.append(" <-> ".join(component) + "\n" + "\n".join(sorted(set(edges))))
    assert not cycles, "import cycles at load time:\n" + "\n".join(described)


# ------------------------------------------------------------- the test's own parts


def test_the_graph_sees_every_kind_of_import() -> None:
    """The reader itself: a known module's imports are found with their load-time flag."""
    items = IMPORTS["api.cli.meter"]
    assert any(item.target == "api.cli.common" and item.at_load for item in items)
    assert any(item.target == "api.cli.gateway" and item.at_load for item in items)
    common = IMPORTS["api.cli.common"]
    # Under `if TYPE_CHECKING:` (not at load) and inside functions (not at load).
    assert any(item.target == "api.settings" and not item.at_load for item in common)
    assert not any(item.target == "ledger.storage.db" and item.at_load for item in common)


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_private_names_are_found_in_every_spelling() -> None:
    source = (
        "from ledger.log.merkle import _hash, leaf_hash\n"
        "from ledger.log import merkle\n"
        "import ledger.log.store as store\n"
        "def f():\n"
        "    from attestation.chain.client import _show\n"
        "    return merkle._internal, store._Private, merkle.leaf_hash\n"
    )
    found = private_imports(imports_of("api.example", source))
    assert [(item.target, item.name) for item in found] == [
        ("ledger.log.merkle", "_hash"),
        ("attestation.chain.client", "_show"),
    ]
    used = [name for _, name in private_attributes("api.example", source)]
    assert sorted(used) == ["ledger.log.merkle._internal", "ledger.log.store._Private"]
    # A module's own private names are its own business.
    assert (
        private_attributes("ledger.log.merkle", "from ledger.log import merkle\nmerkle._x\n") == []
    )
