"""The library's layering: core < models < probes < report < investigations, imports only downward, no cycles.

Imports are read from the source with `ast` (function-level imports included: an import placed inside a
function to dodge a cycle is still a cycle), so nothing is executed.
"""

import ast
from pathlib import Path

import mlx_workbook

PACKAGE = Path(mlx_workbook.__file__).parent
LAYERS = ["core", "models", "probes", "report", "investigations"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every mlx_workbook module a file imports ("from mlx_workbook.core import results" names core.results)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this file's package
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != _module_name(path)}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_top_of_the_package_holds_only_subpackages_and_init():
    files = sorted(p.name for p in PACKAGE.iterdir() if p.is_file() and p.suffix == ".py")
    assert files == ["__init__.py"]
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS) and all((PACKAGE / f / "__init__.py").exists() for f in folders)


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(module) is not None and _layer(target) is not None and _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    # A package's __init__ importing its own submodules is how re-exports work, not a cycle.
    edges = {
        m: {t for t in ts if not (m.endswith(t.rsplit(".", 1)[0]) and t.startswith(m + "."))}
        for m, ts in graph.items()
    }
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """A self-check, so a passing layer test means something: a function-level import is found."""
    edges = _graph()
    assert "mlx_workbook.core.results" in edges["mlx_workbook.report.html"]
    assert any(
        "mlx_workbook.report.plots" in targets for m, targets in edges.items() if ".findings_page" in m
    )
