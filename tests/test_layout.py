"""The house's walls: only gnaq/backend.py knows cupy; gnaq/ imports no deep-learning framework;
no import cycle between gnaq's modules."""

import ast
from pathlib import Path

GNAQ = Path(__file__).resolve().parent.parent / "gnaq"
FRAMEWORKS = {"torch", "jax", "tensorflow", "implicit"}


def imported_roots(path):
    """(module root, line) of every import in a file, with __import__("x") and importlib.import_module("x")."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            yield str(node.args[0].value).split(".")[0], node.lineno


def test_only_backend_imports_cupy_and_no_framework_is_imported():
    found = []
    for path in GNAQ.rglob("*.py"):
        for root, line in imported_roots(path):
            if root in ("cupy", "cupyx") and path.name != "backend.py":
                found.append(f"{path.relative_to(GNAQ.parent)}:{line} imports {root}")
            if root in FRAMEWORKS:
                found.append(f"{path.relative_to(GNAQ.parent)}:{line} imports {root}")
    assert not found, "\n".join(found)


def module_imports(path):
    """gnaq modules a file imports at its top level (relative imports resolved)."""
    package = ".".join(path.relative_to(GNAQ.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    base = package.split(".")[:-1]
    out = set()
    for node in ast.parse(path.read_text()).body:  # top level only: imports inside functions are deferred
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base[:len(base) - node.level + 1]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("gnaq"):
                out.add(target)
                for alias in node.names:
                    out.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("gnaq")}
    return out


def test_no_import_cycles():
    modules = {}
    for path in GNAQ.rglob("*.py"):
        name = ".".join(path.relative_to(GNAQ.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {m: {t for t in module_imports(p) if t in modules and t != m} for m, p in modules.items()}
    # a package's __init__ importing its own submodules is how packages work; cycles through it are not
    for m in graph:
        graph[m] = {t for t in graph[m] if not (m == t.rsplit(".", 1)[0])}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for t in sorted(graph[m]):
            visit(t)
        stack.pop()
    for m in sorted(graph):
        visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)
