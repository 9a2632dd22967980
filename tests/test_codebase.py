"""The shape of the package itself: no import cycle, no long function, every stage in the
registry reachable, every command documented."""

from __future__ import annotations

import ast
from pathlib import Path

import click

from apps_hpc.cli import cli
from apps_hpc.experiment.registry import STAGES

PACKAGE = Path(__file__).resolve().parents[1] / "apps_hpc"
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every apps_hpc module `path` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            submodules = {f"{base}.{a.name}" for a in node.names} & known
            # `from pkg import submodule` imports the submodule (the package's own
            # __init__ runs first for every submodule, so it is not an edge of its own)
            found |= submodules if len(submodules) == len(node.names) else {base, *submodules}
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_the_package() -> None:
    graph = import_graph()
    assert "apps_hpc.cli.common" in graph["apps_hpc.cli"]  # the graph sees real edges
    assert find_cycle(graph) is None


# The layers, lowest first: a module imports only from its own layer or a lower one.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("apps_hpc", "apps_hpc.core", "apps_hpc.hub.paths")),
    ("provenance", ("apps_hpc.provenance", "apps_hpc.hub")),
    (
        "stages",
        (
            "apps_hpc.prepare",
            "apps_hpc.train",
            "apps_hpc.sample",
            "apps_hpc.evaluate",
            "apps_hpc.report",
        ),
    ),
    ("experiment", ("apps_hpc.experiment",)),
    ("launch", ("apps_hpc.launch", "apps_hpc.tools")),
    ("cli", ("apps_hpc.cli", "apps_hpc.__main__")),
)


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names `module` (a package or the module)."""
    best, level = "", -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, index
    assert level >= 0, f"{module} is in no layer: add it to LAYERS"
    return level


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})"
        for name, deps in sorted(graph.items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(name)
    ]


def test_the_layer_rule_finds_an_upward_import() -> None:
    graph = {"apps_hpc.core.records": {"apps_hpc.sample.stage"}, "apps_hpc.sample.stage": set()}
    assert layer_violations(graph) == [
        "apps_hpc.core.records (core) imports apps_hpc.sample.stage (stages)"
    ]
    assert layer_of("apps_hpc.hub.paths") == 0 and layer_of("apps_hpc.hub.fetch") == 1


def test_imports_only_point_down_the_layers() -> None:
    """cli -> launch/tools -> experiment -> stages -> provenance/hub -> core: the core
    imports no stage, launch or CLI; a stage imports no launch, tool or CLI."""
    graph = import_graph()
    assert {layer_of(name) for name in graph} == set(range(len(LAYERS)))
    assert layer_violations(graph) == []


def test_the_package_root_holds_only_subpackages() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"], loose


def test_no_function_over_sixty_lines() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines})")
    assert not long, long


def test_every_registered_stage_resolves() -> None:
    for stage in STAGES.values():
        assert callable(stage.function()), stage.name
        assert isinstance(stage.config_type(), type), stage.name
        if stage.merge:
            assert stage.merge in STAGES and stage.array, stage.name


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


def test_every_command_has_help_with_an_example() -> None:
    for name, command in _commands(cli):
        assert command.help, name
        if not isinstance(command, click.Group) and not name.startswith("submit "):
            assert "Example" in command.help, name
