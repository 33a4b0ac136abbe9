"""The package's shape holds: folders by job, layers pointing down, no cycles, no module doing several jobs.

Read from the source with ``ast`` (nothing is imported), so a violation names the file and the import.
"""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "eclipse_exports"
TOP_LEVEL_MODULES = {"__init__.py", "definitions.py", "jobs.py", "partitions.py", "models.py", "config.py"}
# The Dagster layer: the only places that may import Dagster.
DAGSTER_LAYER = {"definitions", "jobs", "partitions", "assets", "checks", "sensors", "schedules", "resources",
                 "launchers"}
MAX_LINES = 420  # "about 400"


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at the module's top level?) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found += [(n, id(node) in top) for n in names]
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_top_level_holds_only_the_five_modules_and_folders():
    assert {p.name for p in PACKAGE.glob("*.py")} == TOP_LEVEL_MODULES
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        if folder.name == "templates":
            continue
        init = folder / "__init__.py"
        assert init.exists() and ast.get_docstring(ast.parse(init.read_text())), f"{folder.name}/ needs a docstring"


def test_no_module_is_over_about_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by job: {long}"


def test_domain_modules_never_import_dagster():
    offenders = [(name, imported) for name, path in modules().items() if layer(name) not in DAGSTER_LAYER
                 for imported, _top in imports_of(path) if imported.split(".")[0] in ("dagster", "dagster_aws")]
    assert not offenders, offenders


def test_nothing_imports_the_cli():
    offenders = [(name, imported) for name, path in modules().items() if layer(name) != "cli"
                 for imported, _top in imports_of(path) if imported.startswith("eclipse_exports.cli")]
    assert not offenders, offenders


def test_module_level_imports_form_no_cycle():
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for imported, top in imports_of(path):
            if top and imported in known and imported != name:
                graph[name].add(imported)
    visiting, done, cycles = set(), set(), []

    def visit(node: str, trail: list[str]) -> None:
        if node in visiting:
            cycles.append(trail[trail.index(node):] + [node])
            return
        if node in done:
            return
        visiting.add(node)
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [nxt])
        visiting.discard(node)
        done.add(node)

    for start in sorted(known):
        visit(start, [start])
    # A package importing its own submodules (``assets/__init__`` re-exporting) is not a cycle of jobs.
    real = [c for c in cycles if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert not real, real[:5]
