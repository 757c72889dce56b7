"""The project's import graph, read from the source: one direction down a fixed order of packages,
no cycle between modules, and no import hidden in a function to dodge one.

Every `import` and `from … import` of the project's packages is collected with `ast` (imports
inside functions included: an import moved into a function to dodge a cycle is still an edge).
"""

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Top to bottom; a package imports only packages in later tiers (never a peer in its own tier).
# cutout_client/ (the `cutout` batch command) is a plain HTTP client of the server: at the top so
# nothing of the server imports it, and it imports nothing of ours (test_the_client_stands_alone).
# removebg_api/ (the remove.bg-compatible API) sits on rendering, whose stages it runs, and on the
# jobs, sources and limits below it; only config/ wires it. playground/ (a page to try URLs and
# dropped images) sits beside api/ on top: it keeps a dropped image as remove.bg's API keeps uploads.
# webhooks/ and usage/ sit above cutouts/ because they read its jobs (a job's end is a webhook
# event; usage reports count jobs); imaging/ (decoding) is shared by rendering and the workers.
ORDER = [
    ["cutout_client"],
    ["config"],
    ["api", "playground"],
    ["removebg_api"],
    ["rendering"],
    ["webhooks", "usage"],
    ["cutouts"],
    ["sources"],
    ["accounts", "imaging"],
    ["core"],
]
PACKAGES = [package for tier in ORDER for package in tier]
TIER = {package: level for level, tier in enumerate(ORDER) for package in tier}


def deferred_ok(module: str, function: str) -> bool:
    """Where importing inside a function is how Django and Celery want it, not a dodge:
    AppConfig.ready() (models are not loaded when apps.py is), and config/'s entry points (WSGI,
    Celery), which run before Django is set up."""
    return (module.endswith(".apps") and function == "ready") or module.startswith("config.")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _edges(path: Path):
    """(imported module, in which function or None) for each import of the project's packages."""
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(fn):
                functions.setdefault(id(inner), fn.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            # `from pkg import name` may name a module: both are edges to what exists.
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                yield target, functions.get(id(node))


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def graph() -> dict[str, set[str]]:
    """module → the project's modules it imports (names that are not modules are dropped)."""
    return {
        module: {target for target, _ in _edges(path) if target in MODULES and target != module}
        for module, path in MODULES.items()
    }


def test_the_reader_sees_imports():
    # Guards the tests below against passing vacuously.
    edges = graph()
    assert "core.errors" in edges["rendering.views"]
    assert "cutouts.services" in edges["rendering.services"]
    assert "cutouts.services" in edges["cutouts.tasks"]
    assert set(PACKAGES) == {path.relative_to(ROOT).parts[0] for path in MODULES.values()}


def test_every_package_of_the_project_has_its_place_in_the_order():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(PACKAGES), "add the new package to ORDER (and say why it sits there)"


def test_imports_point_down_the_order():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if (a := module.split(".")[0]) != (b := target.split(".")[0]) and TIER[b] <= TIER[a]
    )
    assert not offenders, "imports must point down " + " → ".join("/".join(t) for t in ORDER) + f": {offenders}"


def test_no_cycle_between_modules():
    edges = graph()
    state, stack, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, f"import cycles: {[' → '.join(c) for c in cycles]}"


def test_no_import_hidden_in_a_function():
    offenders = sorted(
        f"{module}: {target} in {function}()"
        for module, path in MODULES.items()
        for target, function in _edges(path)
        if function is not None and not deferred_ok(module, function)
    )
    assert not offenders, f"import at module level (or fix the cycle it dodges): {offenders}"


def test_the_client_stands_alone():
    # It runs on machines with no server installed: no package of ours, no Django, no Celery.
    imported = {target.split(".")[0] for module, targets in graph().items() if module.startswith("cutout_client")
                for target in targets}
    assert imported <= {"cutout_client"}, imported
    third_party = {
        (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for path in (ROOT / "cutout_client").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0)
        for alias in node.names
    }
    assert not third_party & {"django", "rest_framework", "celery", "rembg", "PIL"}, third_party
    assert "urllib3" in third_party  # The reader saw its imports.


def test_services_never_import_tasks():
    # Entry points (views, APIs, admin, receivers) queue work; services decide, tasks call them.
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module.endswith((".services", ".selectors"))
        for target in targets
        if target.endswith((".tasks", ".queueing", ".receivers"))
    )
    assert not offenders, offenders


def test_every_package_is_installed_and_compiled_into_the_image():

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in include} == set(PACKAGES)
    compiled = re.search(r"compileall -q ([\w ]+)", (ROOT / "platform" / "Dockerfile").read_text()).group(1).split()
    assert set(compiled) == set(PACKAGES)
