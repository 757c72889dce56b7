"""The docs name what exists: every project path they cite is a file or folder of the checkout,
and every `module.py:function` they cite is defined there."""

import ast
import re

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
# var/ holds what the running service makes (media, metrics, the benches' installs), not the checkout.
TOP = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} - {"var"}
# Files the docs tell the operator to create.
MADE_BY_THE_OPERATOR = {"platform/.env"}
# `path/inside.ext`, `folder/`, or `path.py:name` in backticks or as a link target.
CITED = re.compile(r"[`(](?P<path>(?:[\w.-]+/)+[\w.-]*)(?::(?P<name>\w+))?[`)]")


def citations(doc):
    for match in CITED.finditer(doc.read_text()):
        path = match["path"].removeprefix("../").removeprefix("./")
        if path.split("/")[0] in TOP:
            yield path, match["name"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_paths_exist(doc):
    missing = sorted({path for path, _ in citations(doc)
                      if not (ROOT / path).exists() and path not in MADE_BY_THE_OPERATOR})
    assert not missing, f"{doc.name} cites what is not in the checkout: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_functions_are_defined_where_cited(doc):
    wrong = []
    for path, name in citations(doc):
        if name and path.endswith(".py") and (ROOT / path).exists():
            tree = ast.parse((ROOT / path).read_text())
            defined = {node.name for node in ast.walk(tree)
                       if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
            defined |= {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                        for t in node.targets if isinstance(t, ast.Name)}
            defined |= {node.target.id for node in ast.walk(tree)
                        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
            if name not in defined:
                wrong.append(f"{path}:{name}")
    assert not wrong, f"{doc.name} cites names that are not defined there: {wrong}"


def test_the_reader_finds_citations():
    cited = dict(citations(ROOT / "docs" / "rendering.md"))
    assert cited.get("rendering/services.py") == "_serve"
    assert "cutouts/services.py" in dict(citations(ROOT / "README.md"))


def test_the_readme_says_what_the_code_does():
    readme = (ROOT / "README.md").read_text()
    # The job's unique key, as the model declares it.
    from cutouts.models import BgRemoveJob

    (constraint,) = [c for c in BgRemoveJob._meta.constraints if c.name == "one_bg_remove_job_per_image"]
    assert f"unique constraint on ({', '.join(constraint.fields)})" in readme
    # The render view is a plain Django function, as the README says.
    from rendering.views import render_view

    assert "a plain Django view, not DRF" in readme and not hasattr(render_view, "cls")
    # Small renders from memory: the threshold the README names is the store's.
    from rendering.store import SMALL_RENDER_BYTES

    assert f"renders up to {SMALL_RENDER_BYTES // 1024} KB are sent from memory" in readme
