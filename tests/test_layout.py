"""The project's import graph: no circles anywhere, and the emulator's arrows pointing one way.

Every module of every top-level package is parsed (not imported) and every import is counted:
at module level, inside functions, under ``if TYPE_CHECKING``, absolute and relative. An import
inside a function is still a dependency; hiding a circle there only defers it to run time.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _packages() -> list[str]:
    return sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and not p.name.startswith("."))


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of every top-level package."""
    out: dict[str, Path] = {}
    for package in _packages():
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that module ``name`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def project_module(dotted: str) -> str | None:
        """``dotted`` or its longest prefix that is a project module (``a.b.attr`` -> ``a.b``)."""
        while dotted:
            if dotted in modules:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = project_module(alias.name)
                if target:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from a import b``: the submodule a.b when there is one, else the module a.
                target = project_module(f"{base}.{alias.name}") if alias.name != "*" else None
                target = target if target and target != project_module(base) else project_module(base)
                if target:
                    found.add(target)
    found.discard(name)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None (depth-first search, deterministic order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_graph_sees_the_packages_and_their_imports():
    graph = import_graph()
    assert {"astra", "emulator", "scenarios"} <= {name.split(".")[0] for name in graph}
    # a module-level import, an import inside a function, and a re-export through a package
    assert "emulator.http.protocol" in graph["emulator.http.app"]
    assert "emulator.faults.engine" in graph["emulator.faults"]
    assert "emulator.faults" in graph["emulator.config"]


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_find_cycle_names_a_circle_hidden_in_a_function(tmp_path):
    """The detector itself: a circle through an import inside a function is found and named."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import thing\n")
    (tmp_path / "pkg" / "b.py").write_text("def thing():\n    from . import a\n    return a\n")
    modules = {"pkg": tmp_path / "pkg" / "__init__.py", "pkg.a": tmp_path / "pkg" / "a.py", "pkg.b": tmp_path / "pkg" / "b.py"}
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


#: Within the emulator, what each sub-package may import from the rest of the emulator (a module
#: matches an entry when it is that module or inside it). Everything else points the other way.
LAYERS = {
    # device models on one clock: nothing of HTTP, faults or serving
    "emulator.sim": ("emulator.sim", "emulator.version"),
    # the Alpaca app: the simulation below it, and nothing of faults beyond the middleware hook
    "emulator.http": ("emulator.http", "emulator.sim", "emulator.version"),
    # rules and their stages: device type names and ASCOM errors, never device semantics
    "emulator.faults": ("emulator.faults", "emulator.sim.devices", "emulator.sim.errors", "emulator.http.protocol",
                        "emulator.validation"),
    # serving: the socket-level stages and the traffic log
    "emulator.serve": ("emulator.serve", "emulator.faults", "emulator.http.protocol"),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_emulator_arrows_point_one_way(layer):
    allowed = LAYERS[layer]
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if target.split(".")[0] == "emulator" and not any(target == a or target.startswith(a + ".") for a in allowed)
    )
    assert not wrong, f"{layer} may import only {allowed} of the emulator:\n  " + "\n  ".join(wrong)


def test_the_proxy_sits_on_top_of_the_emulator():
    """The proxy reuses the emulator's serving front and nothing imports the proxy: it can go
    without the rest noticing."""
    graph = import_graph()
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if (module.split(".")[0] == "proxy" and target.split(".")[0] not in ("proxy", "emulator"))
        or (module.split(".")[0] != "proxy" and target.split(".")[0] == "proxy")
    )
    assert any(m.startswith("proxy.") for m in graph), "no proxy package found"
    assert not wrong, "\n  ".join(wrong)
