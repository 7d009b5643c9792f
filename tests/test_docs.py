"""The documentation stays true where that is cheap to check: every environment variable the
settings read is in docs/configuration.md, and every link of the README and docs/ to a file of
the repository (and to a heading in it) resolves."""

import ast
import re

import pytest
from django.conf import settings

from bench.processes import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"
# Linked before they exist: written in the arch and wire branches of issue 12, and checked like
# every other link as soon as they do (drop this once both are merged).
PENDING = {ROOT / "docs" / "architecture.md", ROOT / "docs" / "asyncapi.yaml"}
ENV_READERS = {"env", "env_bool", "env_int", "env_list"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def settings_variables():
    """The environment variables imserver/settings.py reads; a name built at run time (an
    f-string) is given as its constant prefix followed by "<" (RATE_LIMIT_<SCOPE>)."""
    names = set()
    module = ast.parse((ROOT / "imserver" / "settings.py").read_text())
    # The readers themselves pass their `name` parameter on.
    body = [statement for statement in module.body if getattr(statement, "name", None) not in ENV_READERS]
    for node in (node for statement in body for node in ast.walk(statement)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        reads_env = (isinstance(func, ast.Name) and func.id in ENV_READERS) or (
            isinstance(func, ast.Attribute) and func.attr == "get" and ast.unparse(func.value) == "os.environ"
        )
        if not reads_env:
            continue
        name = node.args[0]
        if isinstance(name, ast.Constant):
            names.add(name.value)
        elif isinstance(name, ast.JoinedStr):
            prefix = name.values[0]
            assert isinstance(prefix, ast.Constant), ast.unparse(name)
            names.add(f"{prefix.value}<")
        else:
            raise AssertionError(f"cannot tell which variable {ast.unparse(node)} reads")
    return names


def test_every_setting_from_the_environment_is_documented():
    names = settings_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "IMSERVER_VAR_DIR", "RATE_LIMIT_<"} <= names  # the finder finds
    text = CONFIGURATION.read_text()
    undocumented = sorted(name for name in names if f"`{name}" not in text)
    assert not undocumented, f"add these to docs/configuration.md: {undocumented}"


def test_every_rate_limit_scope_is_documented():
    text = CONFIGURATION.read_text()
    assert [scope for scope in settings.RATE_LIMITS if f"`{scope}`" not in text] == []


def anchors(path):
    """The fragment ids of a Markdown file's headings, as GitHub makes them."""
    ids = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            ids.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return ids


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_links_to_repository_files_resolve(document):
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:, ...
            continue
        file_part, _, fragment = target.partition("#")
        path = (document.parent / file_part).resolve() if file_part else document
        if path in PENDING and not path.exists():
            continue
        missing = not path.is_relative_to(ROOT) or not path.exists()
        if missing or (fragment and fragment not in anchors(path)):
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)} links to what is not there: {broken}"


def test_readme_stays_an_overview():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
