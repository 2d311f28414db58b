"""The import graph of affsr_cli, read from the source (every import, those inside functions too; not those
under `if TYPE_CHECKING:`): no circle, and arrows that point one way, from the command line down to the engine."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "affsr_cli"
COMMANDS = {"pinv", "upscale", "eval", "export", "project", "train"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """The modules `name` (the file `path`) imports, absolute names, affsr_cli's and third parties' alike."""
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # `from . import checkpoint` imports a module
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    raw = {name: _imports(path, name) for name, path in files.items()}
    # the package itself is not an arrow: Python runs affsr_cli/__init__.py for any submodule (it loads api.py
    # lazily, on first use of affsr.upscale and the like)
    return {name: {m for m in deps if m != name and m != "affsr_cli"} for name, deps in raw.items()}


def _ours(graph, name):
    return {m for m in graph[name] if m in graph}


def test_no_import_circle(graph):
    state = {}

    def visit(name, path):
        state[name] = "open"
        for dep in _ours(graph, name):
            assert state.get(dep) != "open", "import circle: " + " -> ".join([*path, dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_the_engine_never_imports_the_command_line_or_a_terminal_library(graph):
    for name, deps in graph.items():
        if name.startswith("affsr_cli.cli") or name == "affsr_cli.__main__":
            continue
        ui = {d for d in deps if d.split(".")[0] in ("typer", "rich", "click") or d.startswith("affsr_cli.cli")}
        assert not ui, f"{name} imports {sorted(ui)}"


def test_only_the_package_front_door_imports_the_api(graph):
    users = {name for name in graph if "affsr_cli.api" in graph[name]} - {"affsr_cli.api"}
    assert users <= {"affsr_cli"}, users


def test_the_commands_share_common_and_never_import_each_other_or_the_app(graph):
    for command in COMMANDS:
        deps = _ours(graph, f"affsr_cli.cli.{command}")
        assert not deps & {f"affsr_cli.cli.{c}" for c in COMMANDS - {command}} and "affsr_cli.cli.app" not in deps, deps
    assert not {d for d in _ours(graph, "affsr_cli.cli.common") if d.startswith("affsr_cli.cli.")} - {
        "affsr_cli.cli.terminal"
    }
    assert {f"affsr_cli.cli.{c}" for c in COMMANDS} <= graph["affsr_cli.cli.app"]  # app registers every command


def test_files_stay_small():
    long = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"files over 400 lines: {long}"
