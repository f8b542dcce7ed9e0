"""The package layout, checked by parsing the source (nothing is imported).

- No import cycle between files: a file's imports, module-level and inside functions alike, form
  a graph with no strongly connected component of two or more files.
- No module reads another package's private (``_underscore``) names.
- ``experiments/`` scripts do not edit ``sys.path``: they run as modules (``python -m experiments.x``)
  against the installed package.

Imports inside functions count: moving an import into a function hides a cycle from Python's
import order but not from the design, so a cycle through a function-level import is a cycle too.
Imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search_spaces", "latency_predictors", "nas", "experiments")


def _files(root: Path = REPO) -> dict[str, Path]:
    """module name -> file, for every .py file of the project packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_package(name: str, files: dict[str, Path]) -> bool:
    return files[name].name == "__init__.py"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def _imports(name: str, files: dict[str, Path]):
    """(module, imported names or None, line) of each import in ``name``'s file, resolved to project modules."""
    tree = ast.parse(files[name].read_text(), str(files[name]))
    skip = _type_checking_nodes(tree)
    pkg = name if _is_package(name, files) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in files or a.name.split(".")[0] in PACKAGES:
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] in PACKAGES:
                yield mod, [a.name for a in node.names], node.lineno


def import_graph() -> dict[str, set[str]]:
    """file -> the project files its imports load by name (a package's __init__ for its symbols)."""
    files = _files()
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name in files:
        for mod, names, _ in _imports(name, files):
            targets = set()
            for sub in names or [None]:
                if sub is not None and f"{mod}.{sub}" in files:
                    targets.add(f"{mod}.{sub}")  # `from pkg import module`
                elif mod in files:
                    targets.add(mod)
            graph[name] |= targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with two or more files (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def _cycle_path(graph: dict[str, set[str]], comp: list[str]) -> str:
    """One concrete loop inside a component, for the failure message."""
    start, members = comp[0], set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return " -> ".join([*reversed(path), start])
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return ", ".join(comp)


def test_the_checker_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert _cycle_path(graph, ["a", "b", "c"]) == "a -> b -> c -> a"
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_files():
    graph = import_graph()
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the walk found the project
    found = [_cycle_path(graph, c) for c in cycles(graph)]
    assert not found, "import cycles between files:\n" + "\n".join(found)


def _package(module: str) -> str:
    return module.split(".")[0]


def _defined_private(tree: ast.AST) -> set[str]:
    """Underscore names a file defines: functions, classes, assignments (self._x = ... included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_reads(root: Path = REPO) -> list[str]:
    """Reads of another package's private names.

    ``from other_package.x import _name``, ``other_module._name``, and ``obj._name`` where only
    another package defines ``_name`` (a space's ``_search_table`` read by a strategy).
    """
    files = _files(root)
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in files.items()}
    defined: dict[str, set[str]] = {}
    for name, tree in trees.items():
        defined.setdefault(_package(name), set()).update(_defined_private(tree))
    found = []
    for name, path in files.items():
        here, tree, where = _package(name), trees[name], path.relative_to(root)
        others = set().union(*(d for p, d in defined.items() if p != here)) - defined.get(here, set())
        aliases = {}  # local name -> project module it stands for
        for mod, names, line in _imports(name, files):
            for sub in names or []:
                if sub.startswith("_") and not sub.startswith("__") and _package(mod) != here:
                    found.append(f"{where}:{line}: from {mod} import {sub}")
                elif f"{mod}.{sub}" in files:
                    aliases[sub] = f"{mod}.{sub}"
            if names is None:
                aliases[mod.split(".")[0]] = mod.split(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                target = ast.unparse(node.value)
                mod = aliases.get(target.split(".")[0])
                if (mod is not None and _package(mod) != here) or node.attr in others:
                    found.append(f"{where}:{node.lineno}: {target}.{node.attr}")
    return found


def test_the_checker_finds_private_reads(tmp_path):
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "nas").mkdir()
    (tmp_path / "search_spaces" / "a.py").write_text(
        "_SECRET = 1\n\nclass Space:\n    def __init__(self):\n        self._table = 2\n"
        "    def size(self):\n        return self._table + _SECRET\n")
    (tmp_path / "nas" / "b.py").write_text(
        "from search_spaces.a import _SECRET, Space\nimport search_spaces.a as sa\n\n"
        "def f(sp):\n    return sp._table + sa._SECRET + _own(sp)\n\ndef _own(sp):\n    return sp.size()\n")
    found = private_reads(tmp_path)
    assert found == ["nas/b.py:1: from search_spaces.a import _SECRET", "nas/b.py:5: sp._table",
                     "nas/b.py:5: sa._SECRET"], found  # search_spaces' own reads and nas's _own are fine


def test_no_module_reads_another_packages_private_names():
    found = private_reads()
    assert not found, "private names read across packages:\n" + "\n".join(found)


def test_experiments_do_not_edit_sys_path():
    found = []
    for path in sorted((REPO / "experiments").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and ast.unparse(node) == "sys.path":
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, "sys.path edited (run experiments as modules: python -m experiments.NAME):\n" + "\n".join(found)


def test_packages_import_only_the_layers_below():
    """search_spaces < latency_predictors < nas < experiments (docs/architecture.md)."""
    rank = {pkg: i for i, pkg in enumerate(PACKAGES)}
    graph = import_graph()
    upward = [f"{a} -> {b}" for a, bs in sorted(graph.items()) for b in sorted(bs)
              if rank[_package(a)] < rank[_package(b)]]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)
