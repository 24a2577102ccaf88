"""The house rules of the source tree, checked on the code itself: imports point down the
layers, no module imports a private name of another package, and no import cycle exists
(lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "poolwise"

#: rank of each top-level package or module; an import must go to a strictly lower rank
RANKS = {
    "_ext": 0, "pooling": 1, "poolwise": 2,  # the root package re-exports pooling only
    "theory": 3, "data": 3, "models": 3, "envs": 3,
    "probes": 4, "experiments": 4, "integrations": 4,
    "runner": 5, "report": 6, "cli": 7, "__main__": 8,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, str]]:
    """``(importer, imported module, imported name)`` for every poolwise import."""
    found = []
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    found.append((name, full if full in modules else target, alias.name))
            elif isinstance(node, ast.Import):
                found += [(name, a.name, "") for a in node.names]
    return [f for f in found if f[1].startswith("poolwise")]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


MODULES = _modules()
IMPORTS = _imports(MODULES)


def test_every_layer_has_a_rank():
    assert {_layer(m) for m in MODULES} <= set(RANKS), sorted({_layer(m) for m in MODULES} - set(RANKS))


def test_imports_point_down():
    up = [(a, b) for a, b, _ in IMPORTS
          if _layer(a) != _layer(b) and RANKS[_layer(b)] >= RANKS[_layer(a)]]
    assert not up, f"imports that point up or sideways: {up}"


def test_no_private_name_crosses_a_package():
    private = [(a, f"{b}.{n}") for a, b, n in IMPORTS
               if _layer(a) != _layer(b) and ((n.startswith("_") and not n.startswith("__"))
                                              or any(p.startswith("_") and not p.startswith("__")
                                                     for p in b.split(".")[1:] if _layer(b) != "_ext"))]
    assert not private, f"private names imported from another package: {private}"


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for a, b, _ in IMPORTS:
        if b in MODULES and a != b:
            graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [])
    assert not cycles, f"import cycles: {cycles}"


def test_the_parser_sees_every_kind_of_import():
    """The parser behind these tests sees relative, absolute and lazy imports."""
    assert ("poolwise.cli.frozen", "poolwise.cli._common", "UsageError") in IMPORTS
    assert any(a == "poolwise.integrations.transformers" and b == "poolwise.pooling" for a, b, _ in IMPORTS)
    lazy = [(a, b) for a, b, _ in IMPORTS if a == "poolwise.cli.knn" and b.startswith("poolwise.runner")]
    assert lazy  # imported inside run(), still counted
