"""A notebook's declared parameters: the typed, commented assignments of its `parameters` cell.

    sizes_mb: list = [1, 16, 64]  # bandwidth probe buffer sizes, MB

Read from the jupytext source (`notebooks/<name>.py`) with `ast`, so the runner can check a value against its
type before a kernel starts, and a notebook can collect its own values in one call (`collect`).
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlx_workbook import ROOT

NOTEBOOKS_DIR = ROOT / "notebooks"
CELL_MARKER = "# %%"
PARAMETERS_TAG = '"parameters"'
# Set by the runner for every run; not a parameter a reader chooses, so not part of the run's parameters.
RUNNER_ONLY = ("run_dir",)


class ParameterError(ValueError):
    """A parameter value that does not match its declaration."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # the annotation as written: "int", "float", "str", "bool", "list", "dict"
    default: Any
    help: str = ""


def source(notebook: str | Path) -> Path:
    path = Path(notebook)
    return path if path.suffix == ".py" else NOTEBOOKS_DIR / f"{notebook}.py"


def _parameters_cell(text: str) -> tuple[str, int]:
    """The parameters cell's code and the line it starts on (1-based)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(CELL_MARKER) and PARAMETERS_TAG in line:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(CELL_MARKER)), len(lines))
            return "\n".join(lines[i + 1 : end]), i + 2
    return "", 0


def declared(notebook: str | Path) -> dict[str, Parameter]:
    """{name: Parameter} in the order the parameters cell declares them ({} when it has none)."""
    path = source(notebook)
    code, _ = _parameters_cell(path.read_text())
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out = {}
    for node in ast.parse(code).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        try:
            default = ast.literal_eval(node.value) if node.value is not None else None
        except ValueError:  # an expression: its text is the best description of the default
            default = ast.unparse(node.value)
        span = range(node.lineno, node.end_lineno + 1)
        help_text = " ".join(comments[n] for n in span if n in comments)
        name = node.target.id
        out[name] = Parameter(name, ast.unparse(node.annotation), default, help_text)
    return out


def collect(notebook: str, namespace: dict) -> dict:
    """The values of the notebook's declared parameters in `namespace` (its globals()), runner-only ones left out."""
    return {k: namespace[k] for k in declared(notebook) if k not in RUNNER_ONLY and k in namespace}


def _kind(value) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


def _element_type(default) -> type | None:
    """The one element type of a default list (int, float or str), if it has exactly one; else None."""
    kinds = {_kind(v) for v in default} if isinstance(default, list) else set()
    if kinds == {"int"}:
        return int
    if kinds <= {"int", "float"} and "float" in kinds:
        return float
    return str if kinds == {"str"} else None


def _matches(value, expected: type) -> bool:
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}
_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false", list: "a list"}


def check(parameter: Parameter, value):
    """The value if it fits the declared type (a single value given for a list becomes a one-item list);
    otherwise ParameterError saying what was expected."""
    expected = _TYPES.get(parameter.type.split("[")[0])
    if expected is None:  # an annotation this checker does not know: taken as given
        return value
    if expected is list and not isinstance(value, list) and not isinstance(value, dict):
        value = [value]  # presets=tiny means ['tiny'], not the characters of 'tiny'
    if not _matches(value, expected):
        hint = " (quote it to pass a number as text)" if expected is str and _kind(value) != "list" else ""
        raise ParameterError(
            f"{parameter.name}={value!r}: expected {_WORDS.get(expected, expected.__name__)}, "
            f"got {_kind(value)}{hint}"
        )
    element = _element_type(parameter.default) if expected is list else None
    bad = [v for v in value if not _matches(v, element)] if element else []
    if bad:
        raise ParameterError(
            f"{parameter.name}={value!r}: every item must be {_WORDS[element]} (like {parameter.default!r}); "
            f"{bad[0]!r} is not"
        )
    return value
