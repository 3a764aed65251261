"""Inside an investigation, imports follow the work's order: measuring (measure.py and its helpers) never
imports reading back (stats.py, analysis.py), and analysis never imports findings (findings build on analysis)."""

import ast
from pathlib import Path

import mlx_workbook

INVESTIGATIONS = Path(mlx_workbook.__file__).parent / "investigations"
LATER = {
    "measure": {"stats", "analysis", "findings"},
    "stats": {"analysis", "findings"},
    "analysis": {"findings"},
}


def _siblings_imported(path: Path) -> set[str]:
    """Modules of the same investigation a file imports, function-level imports included."""
    package = f"mlx_workbook.investigations.{path.parent.name}"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == package:
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + "."):
            found.add(node.module.rsplit(".", 1)[1])
    return found


def test_measuring_does_not_read_back_and_analysis_does_not_import_findings():
    wrong = [
        f"{path.parent.name}/{path.name} imports {name}"
        for path in sorted(INVESTIGATIONS.glob("*/*.py"))
        for name in _siblings_imported(path)
        if name in LATER.get(path.stem, set())
    ]
    assert not wrong, wrong
    assert (INVESTIGATIONS / "decode_loop" / "measure.py").exists()  # the rule reads real files
