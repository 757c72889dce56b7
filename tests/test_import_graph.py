"""The project's import graph, read from the source: core/ is the bottom and config/ only wires.

Every `import` and `from … import` of the project's packages is collected with `ast` (imports
inside functions included: an import moved into a function to dodge a cycle is still an edge).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["core", "config", "accounts", "sources", "rendering"]
# config/ wires the apps together: nothing below it may import it.
APPS = ["accounts", "sources", "rendering"]


def imports_of(package: str) -> dict[str, set[str]]:
    """module path → the project packages it imports (absolute and relative imports alike)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                targets.add(package if node.level else (node.module or "").split(".")[0])
        found[str(path.relative_to(ROOT))] = targets & set(PACKAGES)
    return found


def test_the_reader_sees_imports():
    # Guards the tests below against passing vacuously.
    assert "core" in imports_of("rendering")["rendering/views.py"]
    assert "sources" in imports_of("rendering")["rendering/services.py"]


def test_core_imports_nothing_of_the_project():
    offenders = {module: targets - {"core"} for module, targets in imports_of("core").items()
                 if targets - {"core"}}
    assert not offenders, f"core/ must import nothing of ours: {offenders}"


def test_no_app_imports_config():
    offenders = {module: "config" for app in APPS for module, targets in imports_of(app).items()
                 if "config" in targets}
    assert not offenders, f"config/ is wiring only; move what the apps need into core/: {offenders}"
