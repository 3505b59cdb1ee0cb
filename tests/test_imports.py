"""The import graph of src/difflab points one way (DESIGN.md section 5), read from the source.

Pure `ast`: no difflab module is imported. An edge A -> B means A names B in an import statement
(absolute or relative, at module level or inside a function); `from X import name` is an edge to
X.name when that is a module, else to X. The packages above B, which Python initialises first,
are not edges: they run before any module of theirs, whoever imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "difflab"
NEVER_IMPORT_TRAIN = ["eval", "samplers", "nets", "data", "policy", "figures"]


# ----------------------------------------------------------------------------------------------
# The checker
# ----------------------------------------------------------------------------------------------


def find_modules(root: Path) -> dict[str, Path]:
    """{"difflab.x.y": file} for every .py file under the package directory `root`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _import_nodes(tree: ast.Module, top_only: bool):
    """The Import / ImportFrom nodes of a module; top_only skips function bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not (top_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)):
            stack.extend(ast.iter_child_nodes(node))


def _base(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module named by `from <level dots><module> import ...` inside `name`."""
    if node.level == 0:
        return node.module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _named(name: str, path: Path, modules: dict, top_only: bool) -> set[str]:
    """Every module name (difflab's or not) that the module `name` (file `path`) imports."""
    targets = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path)), top_only):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = _base(node, name, path.name == "__init__.py")
        for alias in node.names:
            targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return targets


def imports_of(name: str, path: Path, modules: dict, top_only: bool = False) -> set[str]:
    """The modules of `modules` that the module `name` (source file `path`) imports."""
    return {t for t in _named(name, path, modules, top_only) if t in modules}


def missing_imports(root: Path) -> list[str]:
    """"a -> b" for every import of a module b under `root` that has no source file."""
    modules = find_modules(root)
    return sorted(f"{a} -> {b}" for a, path in modules.items()
                  for b in _named(a, path, modules, False)
                  if under(b, root.name) and b not in modules)


def import_graph(root: Path, top_only: bool = False) -> dict[str, set[str]]:
    """{module: the modules it imports} for the package directory `root`."""
    modules = find_modules(root)
    return {name: imports_of(name, path, modules, top_only) for name, path in modules.items()}


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def edges_into(graph: dict, sources: str, targets: str) -> list[str]:
    """"a -> b" for every edge from a module under `sources` to one under `targets`."""
    return sorted(f"{a} -> {b}" for a, bs in graph.items() if under(a, sources)
                  for b in bs if under(b, targets))


def cycles(graph: dict) -> list[list[str]]:
    """The strongly connected components of more than one module (or with a self-edge), sorted;
    Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    out.append(_pop_component(node, stack, on_stack))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(c for c in out if len(c) > 1 or c[0] in graph[c[0]])


def _pop_component(node: str, stack: list, on_stack: set) -> list[str]:
    component = []
    while not component or component[-1] != node:
        component.append(stack.pop())
        on_stack.discard(component[-1])
    return sorted(component)


# ----------------------------------------------------------------------------------------------
# difflab's graph
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph():
    return import_graph(SRC)


def test_the_checker_sees_difflab(graph):
    assert {"difflab", "difflab._version", "difflab.eval.metrics", "difflab.train"} <= set(graph)
    assert "difflab.eval.metrics" in graph["difflab.eval.compare"]  # relative, one level down
    assert "difflab.samplers" in graph["difflab.eval.compare"]  # `from .. import samplers`
    assert "difflab.pictures" in graph["difflab.eval.compare"]  # inside a function


@pytest.mark.parametrize("package", NEVER_IMPORT_TRAIN)
def test_lower_layers_never_import_train(graph, package):
    assert edges_into(graph, f"difflab.{package}", "difflab.train") == []


def test_samplers_never_import_nets_or_data(graph):
    assert edges_into(graph, "difflab.samplers", "difflab.nets") == []
    assert edges_into(graph, "difflab.samplers", "difflab.data") == []


def test_version_is_a_leaf(graph):
    assert graph["difflab._version"] == set()


def test_train_never_imports_the_package_root(graph):
    assert [a for a, bs in graph.items() if under(a, "difflab.train") and "difflab" in bs] == []


def test_every_difflab_import_names_a_module_that_exists():
    assert missing_imports(SRC) == []  # a module moved, an importer left behind


def test_no_cycles_among_module_level_imports():
    assert cycles(import_graph(SRC, top_only=True)) == []


def test_no_cycles_counting_imports_inside_functions(graph):
    assert cycles(graph) == []


# ----------------------------------------------------------------------------------------------
# The control: the checker finds a violation and a cycle that are there
# ----------------------------------------------------------------------------------------------

FAKE = {
    "__init__.py": "from . import a\nfrom ._version import __version__\n",
    "_version.py": "__version__ = '0'\n",
    "a.py": "from difflab import b\n",
    "b.py": "import os\n\ndef f():\n    from .a import g\n    from .gone import h\n",
    "train/__init__.py": "",
    "train/loop.py": "from .. import __version__\nfrom . import steps\n",
    "train/steps.py": "",
    "eval/__init__.py": "",
    "eval/score.py": "class Score:\n    def f(self):\n        from ..train.loop import fit\n",
}


def test_the_checker_reports_a_known_violation_and_a_known_cycle(tmp_path):
    root = tmp_path / "difflab"
    for rel, text in FAKE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    graph, top = import_graph(root), import_graph(root, top_only=True)
    assert graph["difflab.train.loop"] == {"difflab", "difflab.train.steps"}
    assert edges_into(graph, "difflab.eval", "difflab.train") == [
        "difflab.eval.score -> difflab.train.loop"]
    assert edges_into(top, "difflab.eval", "difflab.train") == []  # it was inside a method
    assert cycles(graph) == [["difflab.a", "difflab.b"]]  # b -> a inside f
    assert cycles(top) == []
    assert cycles({"x": {"x"}, "y": set()}) == [["x"]]
    assert missing_imports(root) == ["difflab.b -> difflab.gone"]
