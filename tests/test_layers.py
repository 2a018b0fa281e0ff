"""Infrastructure below features: the packages of ``src/orgproxy`` in layers, each importing
only from the layers below it, read from the sources' ``import`` statements; and no module
longer than one idea needs (450 lines).

The order, from the bottom up (written here once; DESIGN.md's table is the picture):

0. the pure helpers: every module at the top of the package (``fields``, ``money``,
   ``paths``, ``query``, ``text``, ``errors``, ``providers``, ...), ``snapshot`` among them,
   and ``_twisted_private`` (whoever needs a private Twisted name imports it from there).
   The names snapshot is here rather than in ``names/``: it is plain immutable data that
   the core amends and regroups with (``body/``), the metrics count, the cost series label
   and the pages show, and ``names/`` is where it is *built*, from files, the Admin APIs
   and the history.
1. ``infra/``: logs, file watching, the run directory, periodic calls, signals, memory, the
   metrics registry; it knows no feature.
2. ``upstream/`` (HTTP out, and reading an Admin API's page, which discovery and the cost
   series both do) and ``body/`` (the pure core), side by side.
3. ``names/``: the names' sources (alias files, discovery, the history) and the ids unnamed.
4. ``costs/``: the cost series, the budgets and what the dashboard shows. DESIGN.md has it
   beside ``names/``; it builds on it: the budgets file is read and its errors located as
   an alias file's are, and the dashboard's figures show the unknown ids beside the costs.
   (The Admin API's pages it reads from ``upstream/``, as discovery does, and it labels with
   the snapshot.)
5. ``web/`` (HTTP in) and ``ops/`` (reload, workers, the first process), side by side.
6. ``daemon/``: the options, the service, one builder per concern. (DESIGN.md has them
   beside ``tap.py``, in its layer; in a package of their own, a layer below, ``tap.py``
   only composes what they build.)
7. ``tap.py``: the twistd face, composing the daemon's parts.

Packages of one layer never import each other, so that a feature can change without
the other. ``report/`` stands apart: the ``orgproxy-report`` client, it may import the pure
helpers and nothing else of the daemon (tests/report/test_imports.py checks what it loads).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "orgproxy"
PURE_HELPERS = "the pure helpers"
LAYERS: tuple[tuple[str, ...], ...] = (
    (PURE_HELPERS,),
    ("infra",),
    ("upstream", "body"),
    ("names",),
    ("costs",),
    ("web", "ops"),
    ("daemon",),
    ("tap",),
)
APART = {"report": {PURE_HELPERS}}
LAYER_OF = {group: number for number, groups in enumerate(LAYERS) for group in groups}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group_of(module: str) -> str:
    """The layer's group a module of orgproxy belongs to: its package under orgproxy, or
    the pure helpers for a module at the top (tap.py is a group of its own)."""
    parts = module.split(".")
    if len(parts) == 1:
        return PURE_HELPERS  # orgproxy itself
    if (PACKAGE / parts[1]).is_dir() or parts[1] == "tap":
        return parts[1]
    return PURE_HELPERS


def imports_of(path: Path, source: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, module) for every orgproxy module ``path`` imports, at any depth of the code."""
    text = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            # "from orgproxy.infra import metrics" imports a module too.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name == "orgproxy" or name.startswith("orgproxy."):
                yield node.lineno, name


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def is_module(name: str) -> bool:
    parts = name.split(".")[1:]
    return (PACKAGE.joinpath(*parts).with_suffix(".py").is_file()
            or PACKAGE.joinpath(*parts, "__init__.py").is_file())


def test_every_package_has_a_layer() -> None:
    groups = {group_of(module_name(path)) for path in sources()}
    assert groups <= set(LAYER_OF) | set(APART), sorted(groups - set(LAYER_OF) - set(APART))


def offending(path: Path, source: str | None = None) -> list[str]:
    """What ``path`` imports that its layer may not: from a layer above, or beside it."""
    importer = group_of(module_name(path))
    wrong = []
    for line, name in imports_of(path, source):
        imported = group_of(name)
        if imported == importer:
            continue
        if importer in APART:
            allowed = imported in APART[importer]
        else:
            allowed = imported not in APART and LAYER_OF[imported] < LAYER_OF[importer]
        if not allowed:
            wrong.append(f"{path.relative_to(ROOT)}:{line}: {importer} imports {name} ({imported})")
    return wrong


def test_no_package_imports_from_its_own_layer_or_above() -> None:
    wrong = [found for path in sources() for found in offending(path)]
    assert wrong == []


@pytest.mark.parametrize(("importer", "statement"), [
    ("infra", "from orgproxy.names.current import CurrentNames"),  # infrastructure reaching a feature
    ("names", "from orgproxy.costs import store"),  # a feature reaching one above it
    ("web", "from orgproxy.ops import reload"),  # or its neighbour
    ("body", "import orgproxy.web.proxy"),
    ("fields.py", "from orgproxy.infra.logs import log"),  # a pure helper reaching up
    ("report", "from orgproxy.infra import logs"),
])
def test_the_check_sees_an_import_it_forbids(importer: str, statement: str) -> None:
    assert offending(PACKAGE / importer / "reaching.py" if "." not in importer else PACKAGE / importer,
                     statement + "\n") != []


def circles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each circle of imports found walking ``graph`` (module -> the modules it imports)."""
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 while on the path being walked, 2 once done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 1:
                circles.append([*path[path.index(imported):], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return circles


def test_no_module_imports_itself_in_a_circle() -> None:
    graph = {module_name(path): {name for _, name in imports_of(path) if is_module(name)} for path in sources()}
    assert circles_in(graph) == []


def test_the_walk_finds_a_circle() -> None:
    assert circles_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles_in({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_module_holds_more_than_one_idea_s_worth_of_lines() -> None:
    # The brief's bound for src/ and bench/; tap.py only composes, so it stays smaller still.
    lines = {path.relative_to(ROOT): len(path.read_text().splitlines())
             for path in [*sources(), *(ROOT / "bench").glob("*.py")]}
    assert {str(path): count for path, count in lines.items() if count > 450} == {}
    assert lines[Path("src/orgproxy/tap.py")] < 250
