"""The package's import graph, read from the source with ``ast`` (nothing is imported).

Run as a script to print every module's layer, its imports within the package and any
circle or function-level import::

    python tests/import_graph.py

``tests/test_architecture.py`` asserts the rules on the same graph.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "dgan_data"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE


@dataclass
class Module:
    name: str  # dotted, e.g. dgan_data.interpreter.model
    path: Path
    is_package: bool
    top: set[str] = field(default_factory=set)  # package modules imported at module level
    inner: set[str] = field(default_factory=set)  # package modules imported in functions
    inner_external: set[str] = field(default_factory=set)  # third-party, in functions
    type_only: set[str] = field(default_factory=set)  # under `if TYPE_CHECKING:`


def module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _resolve(mod: Module, node: ast.ImportFrom) -> list[str]:
    """Absolute names a ``from X import a, b`` refers to (submodules when they exist)."""
    if node.level:
        base = mod.name.split(".")
        if not mod.is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target + "." + a.name for a in node.names] + [target]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def scan(path: Path) -> Module:
    name, is_package = module_name(path)
    mod = Module(name, path, is_package)
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node: ast.AST, depth: int, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = depth > 0
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.body:
                    visit_stmt(sub, depth, True)
                for sub in child.orelse:
                    visit_stmt(sub, depth, type_only)
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, depth + 1, type_only)
                continue
            visit_stmt(child, depth, type_only, inner)

    def visit_stmt(child: ast.AST, depth: int, type_only: bool, inner: bool | None = None) -> None:
        inner = depth > 0 if inner is None else inner
        names: list[str] = []
        if isinstance(child, ast.Import):
            names = [a.name for a in child.names]
        elif isinstance(child, ast.ImportFrom):
            names = _resolve(mod, child)
        else:
            visit(child, depth, type_only)
            return
        for n in names:
            if n.split(".")[0] != PACKAGE:
                if inner and not n.startswith(("__future__",)):
                    mod.inner_external.add(n.split(".")[0])
                continue
            if type_only:
                mod.type_only.add(n)
            elif inner:
                mod.inner.add(n)
            else:
                mod.top.add(n)

    visit(tree, 0, False)
    return mod


def load_graph() -> dict[str, Module]:
    mods = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        m = scan(path)
        mods[m.name] = m
    # keep only names that are modules (drop "from pkg import function" leftovers)
    for m in mods.values():
        for attr in ("top", "inner", "type_only"):
            setattr(m, attr, {n for n in getattr(m, attr) if n in mods and n != m.name})
    return mods


def edges(mods: dict[str, Module], include_inner: bool = True) -> dict[str, set[str]]:
    """Module -> modules it imports. Importing ``a.b.c`` also runs ``a.b``'s __init__."""
    out: dict[str, set[str]] = {}
    for m in mods.values():
        targets = set(m.top) | (set(m.inner) if include_inner else set())
        full = set()
        for t in targets:
            full.add(t)
            parts = t.split(".")
            for k in range(2, len(parts)):
                parent = ".".join(parts[:k])
                # a module inside that package does not re-run its own package's __init__
                if parent in mods and not m.name.startswith(parent + ".") and m.name != parent:
                    full.add(parent)
        # ``from . import x`` names the module's own package, which is already importing
        ancestors = {".".join(m.name.split(".")[:k]) for k in range(1, m.name.count(".") + 1)}
        if m.is_package:
            ancestors.add(m.name)
        out[m.name] = full - ancestors - {m.name}
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                result.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return result


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Longest-path depth of each module over its imports (0: imports nothing of ours)."""
    depth: dict[str, int] = {}

    def get(v: str, seen: tuple[str, ...] = ()) -> int:
        if v in depth:
            return depth[v]
        if v in seen:
            return 0
        deps = [get(w, (*seen, v)) for w in graph.get(v, ())]
        depth[v] = 1 + max(deps) if deps else 0
        return depth[v]

    for v in graph:
        get(v)
    return depth


def main() -> int:
    mods = load_graph()
    graph = edges(mods)
    lay = layers(graph)
    for name in sorted(mods, key=lambda n: (lay[n], n)):
        deps = sorted(d.removeprefix(PACKAGE + ".") for d in graph[name])
        inner = sorted(d.removeprefix(PACKAGE + ".") for d in mods[name].inner)
        line = f"{lay[name]:2d}  {name:40s} -> {', '.join(deps) or '-'}"
        if inner:
            line += f"   [in functions: {', '.join(inner)}]"
        print(line)
    circles = cycles(graph)
    print(f"\n{len(mods)} modules, {max(lay.values()) + 1} layers, {len(circles)} circle(s)")
    for c in circles:
        print("circle:", ", ".join(c))
    inner_pkg = sum(len(m.inner) for m in mods.values())
    print(f"package imports inside functions: {inner_pkg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
