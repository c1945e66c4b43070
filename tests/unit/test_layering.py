"""The package layering of DESIGN.md ("Layers"), checked on the import graph of kfp_backend/.

A request goes down api -> services -> store, and nothing reaches around a layer: api/ never builds SQL
(it sees service types only), store/ never sees HTTP, the scheduler and the executor call services/.
The graph is read with `ast`, so imports inside functions and under TYPE_CHECKING count as well.
Known exceptions are listed below, each with the reason it is still there; a new one fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "kfp_backend"

# Which top-level part of kfp_backend may import which other part (importing itself is always allowed).
# `config` (the Settings object), `build_info`, `observability` (the Prometheus metrics), `byte_windows` (a
# seekable span of bytes, for streamed reads) and `logs` (the log format) are leaves any layer may read;
# `kfp_backend` is the package root (its __init__: the version). app, cli, __main__ and processes (the child
# processes of `serve --workers`) wire everything together.
FOUNDATION = {"config", "build_info", "kfp_backend", "observability", "byte_windows", "logs"}
# The status vocabulary (run and node phases, job statuses, storage states): constants defined once at the
# bottom layer and named the same way by every layer, the executor's graph walk included. It must stay a
# leaf (see the test below), so reading it reaches nothing of the store.
SHARED_VOCABULARY = {"kfp_backend.store.states"}
WIRING = {"app", "cli", "__main__", "processes"}
ALLOWED: dict[str, set[str]] = {
    "api": {"services"},
    # The web UI: HTTP like api (pages and small JSON routes over the same services, rendered with api's
    # schemas and authenticated by api's authenticator); never the store.
    "ui": {"api", "services"},
    "services": {"store", "workflow"},
    "store": set(),
    "workflow": set(),
    "executor": {"services", "workflow"},
    # The firing parses a job's pipeline spec once into the template of its runs, as the executor reads graphs.
    "scheduler": {"services", "workflow"},
    "config": set(),
    "build_info": set(),
    "observability": set(),  # the Prometheus metric definitions, recorded by api, executor and scheduler
    "byte_windows": set(),  # a seekable span of bytes, read by api/streaming and the S3 artifact store
    "kfp_backend": set(),
    "logs": set(),  # the log format every process configures
}

# Layer crossings that break the table today: (importing module, imported part) -> why it is still there.
KNOWN_LAYER_VIOLATIONS: dict[tuple[str, str], str] = {}

# Import cycles between modules that are known today: the cycle (as a set of modules) -> why.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(tree: ast.AST, package: str) -> set[str]:
    """Every dotted name the module's import statements (at any depth) may refer to."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            # `from kfp_backend.store import db` imports the module kfp_backend.store.db
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> nx.DiGraph:
    """Module -> module edges for every import of one kfp_backend module by another."""
    paths = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(paths)
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for name in _imported_names(ast.parse(path.read_text(), str(path)), package):
            if name in paths and name != module:
                graph.add_edge(module, name)
    return graph


def part_of(module: str) -> str:
    """The top-level part of kfp_backend a module belongs to: api, services, config, ... or kfp_backend."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_violations(graph: nx.DiGraph) -> set[tuple[str, str]]:
    found = set()
    for importer, imported in graph.edges:
        source, target = part_of(importer), part_of(imported)
        if source == target or source in WIRING or target in FOUNDATION or imported in SHARED_VOCABULARY:
            continue
        if target not in ALLOWED.get(source, set()):
            found.add((importer, target))
    return found


def test_every_part_of_the_package_has_a_row_in_the_layer_table() -> None:
    parts = {part_of(module) for module in import_graph()}
    assert parts - WIRING - set(ALLOWED) == set()


def test_the_shared_vocabulary_imports_nothing_of_the_package() -> None:
    graph = import_graph()
    assert {module: sorted(graph.successors(module)) for module in SHARED_VOCABULARY} == {
        module: [] for module in SHARED_VOCABULARY}


def test_the_layer_table_itself_has_no_cycle() -> None:
    table = nx.DiGraph((source, target) for source, targets in ALLOWED.items() for target in targets)
    assert list(nx.simple_cycles(table)) == []


def test_no_import_crosses_the_layers_outside_the_known_list() -> None:
    found = layer_violations(import_graph())
    assert sorted(found - set(KNOWN_LAYER_VIOLATIONS)) == [], "new import against the layering (DESIGN.md)"
    assert sorted(set(KNOWN_LAYER_VIOLATIONS) - found) == [], "fixed: remove it from KNOWN_LAYER_VIOLATIONS"


def part_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """The import graph collapsed to the top-level parts (an edge: some module of one imports the other)."""
    parts = nx.DiGraph()
    parts.add_edges_from((part_of(a), part_of(b)) for a, b in graph.edges if part_of(a) != part_of(b))
    return parts


def test_no_import_cycle_between_the_parts_of_the_package() -> None:
    # Whatever exceptions the module list holds, no two parts import each other (scheduler and services:
    # the scheduler calls services, and the Job API gets its cron check from the wiring).
    assert list(nx.simple_cycles(part_graph(import_graph()))) == []


def test_services_import_nothing_of_the_scheduler_the_executor_or_the_api() -> None:
    parts = part_graph(import_graph())
    assert {"scheduler", "executor", "api"} & set(parts.successors("services")) == set()


def test_a_services_to_scheduler_import_would_be_caught() -> None:
    graph = import_graph()
    graph.add_edge("kfp_backend.services.jobs", "kfp_backend.scheduler.cron")
    assert ("kfp_backend.services.jobs", "scheduler") in layer_violations(graph) - set(KNOWN_LAYER_VIOLATIONS)
    assert list(nx.simple_cycles(part_graph(graph))) != []


def test_no_import_cycle_between_modules_outside_the_known_list() -> None:
    found = {frozenset(cycle) for cycle in nx.simple_cycles(import_graph())}
    assert [sorted(cycle) for cycle in found - set(KNOWN_CYCLES)] == [], "new import cycle"
    assert [sorted(cycle) for cycle in set(KNOWN_CYCLES) - found] == [], "fixed: remove it from KNOWN_CYCLES"


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    graph = import_graph()
    # triggers imports cron inside a function, expressions imports graph under TYPE_CHECKING
    assert graph.has_edge("kfp_backend.scheduler.triggers", "kfp_backend.scheduler.cron")
    assert graph.has_edge("kfp_backend.workflow.expressions", "kfp_backend.workflow.graph")


def test_every_import_form_is_read() -> None:
    source = """
import kfp_backend.store.db
from kfp_backend.services import runs
from . import listing
def late():
    from ..workflow.manifest import WorkflowError
"""
    names = _imported_names(ast.parse(source), "kfp_backend.api")
    assert {
        "kfp_backend.store.db",
        "kfp_backend.services.runs",
        "kfp_backend.api.listing",
        "kfp_backend.workflow.manifest",
    } <= names
