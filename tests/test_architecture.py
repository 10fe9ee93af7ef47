"""The engine's shape, checked: no import cycle, and each layer imports only the layers below.

Every import counts, at module level or inside a function (a lazy import still ties two
modules together). Read statically with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("darkfactory",)

#: Each layer, and the layers it may import (besides itself and the foundation).
LAYERS: dict[str, set[str]] = {
    # What the CrewAI command line runs in a project (crewai run, crewai flow plot, ...).
    "darkfactory.crewai_scripts": {"cli", "engine"},
    "darkfactory.cli": {
        "engine",
        "bench",
        "repo",
        "spec",
        "sandbox",
        "workspace",
        "models",
        "reporting",
        "service",
    },
    # darkfactory serve: the queue, the workers, the API and the dashboard around the engine.
    "darkfactory.service": {"engine", "spec", "workspace", "reporting", "models"},
    "darkfactory.bench": {
        "engine",
        "repo",
        "spec",
        "sandbox",
        "workspace",
        "models",
        "reporting",
        "service",
    },
    "darkfactory.engine": {"repo", "spec", "sandbox", "workspace", "models", "reporting", "crews"},
    # Existing repositories, below the engine: the host pip download is engine/deps.py's.
    "darkfactory.repo": {"workspace", "sandbox", "spec", "models", "engine.deps"},
    "darkfactory.crews": {"models", "workspace", "tools"},
    "darkfactory.tools": {"sandbox", "workspace", "engine.docs_check"},
    # The report reads a run's saved state: engine/state.py is data only (pydantic models).
    "darkfactory.reporting": {"spec", "models.prices", "workspace", "engine.state"},
    "darkfactory.models": {"reporting.trace"},
    "darkfactory.workspace": {"sandbox.base", "spec"},
    "darkfactory.sandbox": {"workspace.hostio"},
    "darkfactory.spec": set(),
}
FOUNDATION = {
    "darkfactory",
    "darkfactory.errors",
    "darkfactory.config",
    "darkfactory.project",
    "darkfactory.yamlio",
}
#: What the foundation may import: config builds the sandbox's limits and names its image
#: (two leaf modules), and checks tool names against the tools registry.
FOUNDATION_USES = {"darkfactory.sandbox.base", "darkfactory.sandbox.image", "darkfactory.tools"}


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, wherever in the file the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import name`` runs pkg/__init__.py too, even when name is a module.
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> str | None:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def allowed(src: str, dst: str) -> bool:
    if dst in FOUNDATION or (src in FOUNDATION and dst in FOUNDATION):
        return True
    here, there = layer_of(src), layer_of(dst)
    if here is None or here == there:
        return True
    rel = dst.removeprefix("darkfactory.")
    return any(rel == a or rel.startswith(a + ".") for a in LAYERS[here])


def test_there_is_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles (each line one cycle):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_each_layer_imports_only_the_layers_below_it() -> None:
    g = graph()
    bad = sorted(
        f"{src} -> {dst}" for src, dsts in g.items() for dst in dsts if not allowed(src, dst)
    )
    assert not bad, "imports against the layering (docs/architecture.md):\n" + "\n".join(bad)


def test_the_foundation_imports_no_layer() -> None:
    g = graph()
    bad = sorted(
        f"{m} -> {d}"
        for m in FOUNDATION
        for d in g.get(m, ())
        if d not in FOUNDATION | FOUNDATION_USES
    )
    assert not bad, bad
