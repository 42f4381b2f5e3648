"""The library's architecture, checked from its source (no import is executed).

- Rooms (subpackages) are layered; a module imports only from its own room or from lower rooms.
- The import graph between modules has no cycle (imports inside functions count too).
- No public name is defined at the top level of two modules.
- No module over 600 lines, no function over 80.
- An import inside a function names one of the heavy packages `idiff_lib/__init__.py` lists, with its comment.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from idiff_lib.core import paths

LIB = paths.PROJ_ROOT / "idiff_lib"


def _documented_layers() -> tuple[str, ...]:
    """The rooms as `idiff_lib/__init__.py` lists them for a reader, lowest first (one indented row each)."""
    doc = ast.get_docstring(ast.parse((LIB / "__init__.py").read_text(encoding="utf-8"))) or ""
    block = doc.split("Rooms, lowest first.", 1)[-1].split("\n\n", 2)[1] if "Rooms, lowest first." in doc else ""
    return tuple(line.split()[0] for line in block.splitlines() if line.startswith("    ") and line.strip())


def _documented_deferred() -> tuple[str, ...]:
    """The heavy packages `idiff_lib/__init__.py` lets a function import (one indented row each)."""
    doc = ast.get_docstring(ast.parse((LIB / "__init__.py").read_text(encoding="utf-8"))) or ""
    marker = "checks that every import inside a function names one of them and carries the comment:"
    block = doc.split(marker, 1)[-1].split("\n\n", 2)[1] if marker in doc else ""
    return tuple(line.split()[0] for line in block.splitlines() if line.startswith("    ") and line.strip())


LAYERS = _documented_layers()
DEFERRED = _documented_deferred()
DEFERRED_COMMENT = "# deferred: heavy"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
# Names every command-group module of the CLI defines on purpose (one per `idiff` command group).
SHARED_BY_DESIGN = {"add_cli"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The idiff_lib modules one `from ... import ...` statement loads."""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if not base.startswith("idiff_lib"):
        return []
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        targets.append(candidate if candidate in MODULES else base)
    return [t for t in targets if t in MODULES]


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                edges.update(_resolve(module, path, node))
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in MODULES)
        # A package's __init__ is imported with any of its modules: that edge is not a dependency.
        graph[module] = {e for e in edges if e != module and not module.startswith(e + ".")}
    return graph


GRAPH = _imports()


def test_every_module_is_in_a_known_room():
    rooms = {_room(m) for m in MODULES} - {None}
    assert LAYERS and len(set(LAYERS)) == len(LAYERS), f"idiff_lib/__init__.py lists no rooms, or one twice: {LAYERS}"
    assert rooms == set(LAYERS), (f"rooms not listed in idiff_lib/__init__.py: {sorted(rooms - set(LAYERS))}; "
                                  f"listed but absent: {sorted(set(LAYERS) - rooms)}")


def test_imports_go_down_the_layers_only():
    upward = []
    for module, targets in GRAPH.items():
        room = _room(module)
        if room is None:
            continue
        for target in targets:
            other = _room(target)
            if other is not None and LAYERS.index(other) > LAYERS.index(room):
                upward.append(f"{module} -> {target}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _public_definitions(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("_")]


def test_no_public_name_is_defined_twice():
    where = defaultdict(list)
    for module, path in MODULES.items():
        for name in _public_definitions(ast.parse(path.read_text(encoding="utf-8"))):
            where[name].append(module)
    twice = {n: ms for n, ms in where.items() if len(ms) > 1 and n not in SHARED_BY_DESIGN}
    assert not twice, "defined in several modules:\n" + "\n".join(f"{n}: {ms}" for n, ms in sorted(twice.items()))


def test_add_cli_lives_only_in_the_cli():
    outside = [m for m, path in MODULES.items() if not m.startswith("idiff_lib.cli")
               and "add_cli" in _public_definitions(ast.parse(path.read_text(encoding="utf-8")))]
    assert not outside, f"command-line code in domain modules: {outside}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_and_function_sizes(module):
    source = MODULES[module].read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{module}: over {MAX_MODULE_LINES} lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_global_state_is_changed_at_import():
    """Thread counts and the umask are set by the chain, never as a side effect of importing a module."""
    offenders = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            for call in ast.walk(node):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    break
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                        and call.func.attr in ("umask", "set_num_threads", "set_num_interop_threads"):
                    offenders.append(f"{module}: {call.func.attr}")
    assert not offenders, offenders


def function_imports(source: str) -> list[tuple[int, str, bool]]:
    """Each import inside a function: its line, the package it names and whether its comment says it is deferred.

    The comment may end the import's first line or sit alone on the line above.
    """
    lines = source.splitlines()
    out = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                commented = "deferred" in lines[node.lineno - 1] or (above.startswith("#") and "deferred" in above)
                out.append((node.lineno, (name or "").split(".")[0], commented))
    return sorted(set(out))


def test_imports_inside_functions_are_the_listed_heavy_packages_and_say_so():
    assert "timm" in DEFERRED and "idiff_lib" not in DEFERRED, DEFERRED
    bad = [f"{path.relative_to(LIB.parent)}:{line} imports {name}" + ("" if commented else " without its comment")
           for path in _modules().values()
           for line, name, commented in function_imports(path.read_text(encoding="utf-8"))
           if name not in DEFERRED or not commented]
    assert not bad, "move these imports to the module top, or list the package in idiff_lib/__init__.py: " + "; ".join(bad)
    deferred = {name for path in _modules().values() for _, name, _ in function_imports(path.read_text(encoding="utf-8"))}
    assert set(DEFERRED) == deferred, f"listed but imported at the tops only: {sorted(set(DEFERRED) - deferred)}"


def test_the_deferred_check_sees_a_light_import_and_a_missing_comment():
    source = ("def f():\n    import json\n    import timm\n    import sklearn  " + DEFERRED_COMMENT + "\n"
              "    " + DEFERRED_COMMENT + "\n    from transformers import (AutoModel,\n        AutoTokenizer)\n")
    assert function_imports(source) == [(2, "json", False), (3, "timm", False), (4, "sklearn", True),
                                        (6, "transformers", True)]


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The graph builder itself: a made-up module importing upward is resolved to its target."""
    fake = tmp_path / "x.py"
    fake.write_text("from idiff_lib.chain import runner\n")
    node = ast.parse(fake.read_text()).body[0]
    assert _resolve("idiff_lib.core.x", LIB / "core" / "x.py", node) == ["idiff_lib.chain.runner"]
    rel = ast.parse("from ..data import pairs\n").body[0]
    assert _resolve("idiff_lib.core.x", LIB / "core" / "x.py", rel) == ["idiff_lib.data.pairs"]
