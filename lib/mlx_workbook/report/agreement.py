"""Do two runs, or two sets of runs (one per notebook), reach the same conclusions?

A reproducibility check for the verdicts, not the numbers (compare.py sets the numbers side by side):

- verdicts: every claim finding both runs judged, its category in each (core.verdicts), and whether they agree
  (a claim judged by another claim's measurement, `measured.same_as`, is counted once, as on the findings page).
  The share that agrees is counted over the claims judged from data (holds, size differs, does not hold,
  inconclusive) in at least one of the two runs; claims out of scope or not measured in both agree trivially
  and are counted apart;
- inconclusive: per run, the share of its claims judged from data that came out inconclusive;
- saved lists (a run's tables/<name>.csv, e.g. 03's confirmed cliffs): rows are identified by their columns
  that are not floating-point (sweep, mode, lengths, ...); the lists are identical when both hold the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlx_workbook.core import results, verdicts

CLAIM_CATEGORIES = set(verdicts.CATEGORIES)


def _runs_in(folder: Path) -> list[results.RunSummary]:
    out = []
    for child in sorted(p for p in Path(folder).iterdir() if (p / results.SUMMARY).exists()):
        try:
            out.append(results.RunSummary.read(child))
        except results.SummaryError:
            continue
    return [s for s in out if s.ok]


def devices(folder: Path) -> set[str]:
    """The devices of the finished runs directly inside a folder of runs."""
    return {s.device for s in _runs_in(folder)}


def run_set(folder: Path, device: str | None = None) -> dict[str, Path]:
    """A run folder -> {its notebook: it}; a folder of runs -> the newest finished run of each notebook
    directly inside it (nested folders are other sets), of `device` only when given."""
    folder = Path(folder)
    if (folder / results.SUMMARY).exists():
        return {results.RunSummary.read(folder).notebook: folder}
    newest: dict[str, results.RunSummary] = {}
    for summary in _runs_in(folder):
        if device is not None and summary.device != device:
            continue
        if (
            summary.notebook not in newest or summary.started >= newest[summary.notebook].started
        ):  # ties: later name
            newest[summary.notebook] = summary
    if not newest:
        raise ValueError(f"{folder} holds no finished run" + (f" on {device}" if device else ""))
    return {nb: s.path for nb, s in sorted(newest.items())}


def of_paths(path_a: Path, path_b: Path) -> Agreement:
    """The agreement of two runs, or of two sets of runs; where one set holds runs of one device only, the
    other set's runs of that device are the ones compared (a reference folder holds several devices)."""
    path_a, path_b = Path(path_a), Path(path_b)
    if all((p / results.SUMMARY).exists() for p in (path_a, path_b)):
        return agreement({"run": path_a}, {"run": path_b})
    dev_a = set() if (path_a / results.SUMMARY).exists() else devices(path_a)
    dev_b = set() if (path_b / results.SUMMARY).exists() else devices(path_b)
    only = next(iter(dev_b)) if len(dev_b) == 1 else next(iter(dev_a)) if len(dev_a) == 1 else None
    return agreement(run_set(path_a, only), run_set(path_b, only))


def verdict_table(run_a: Path, run_b: Path) -> pd.DataFrame:
    """One row per claim finding in either run: its verdict in A and in B (empty where a run lacks it)."""
    a, b = results.RunSummary.read(run_a), results.RunSummary.read(run_b)

    def claims(s: results.RunSummary) -> dict[str, str]:
        # a claim judged by another claim's measurement (measured.same_as) is that claim's verdict: count it once
        out = {
            f.id: verdicts.normalize(f.verdict) for f in s.findings if not (f.measured or {}).get("same_as")
        }
        return {k: v for k, v in out.items() if v in CLAIM_CATEGORIES}

    ca, cb = claims(a), claims(b)
    rows = [
        {
            "notebook": a.notebook,
            "id": i,
            "verdict_a": ca.get(i, ""),
            "verdict_b": cb.get(i, ""),
            "width_a": interval_width(a.finding(i)),
            "width_b": interval_width(b.finding(i)),
        }
        for i in sorted(set(ca) | set(cb))
    ]
    table = pd.DataFrame(rows, columns=["notebook", "id", "verdict_a", "verdict_b", "width_a", "width_b"])
    table["agree"] = table.verdict_a == table.verdict_b
    table["from_data"] = table.verdict_a.isin(verdicts.FROM_DATA) | table.verdict_b.isin(verdicts.FROM_DATA)
    return table


def interval_width(finding: results.Finding | None) -> float:
    """A claim's measured interval as a width in % of its value: in points for a % change (the same thing for
    a ratio near 1), else (high - low) / |value|; nan without an interval."""
    m = (finding.measured if finding else None) or {}
    try:
        value, low, high = float(m["value"]), float(m["low"]), float(m["high"])
    except (KeyError, TypeError, ValueError):
        return float("nan")
    if str(m.get("unit", "")).strip() == "%":
        return high - low
    return 100 * (high - low) / abs(value) if value else float("nan")


def _identity_columns(table: pd.DataFrame) -> list[str]:
    """Columns that name a row rather than measure it: text, flags and whole numbers (lengths, head dims; a
    float column of whole numbers is a configuration read back from CSV); measured floats are left out."""

    def names(column: pd.Series) -> bool:
        if not pd.api.types.is_float_dtype(column):
            return True
        values = column.dropna()
        return bool(len(values)) and bool((values == values.round()).all())

    return [c for c in table.columns if names(table[c])]


def _key(folder: Path, name: str) -> list[str] | None:
    """The key columns a run saved beside its list (Run.save_table(..., key=...)), if it did."""
    file = folder / f"{name}.key"
    return file.read_text().split() if file.exists() else None


# A saved list's companion: the rows a run measured but could not decide (03: steps at the tolerance's edge). A row
# only in A that B lists there is no contradiction, and the comparison says how many of the differences are such.
UNDECIDED = {"cliffs": "undecided_steps"}


def list_difference(run_a: Path, run_b: Path, name: str) -> dict | None:
    """Two runs' saved lists `name`: rows only in A, only in B (by their key columns); None if either lacks it.
    Where both runs saved the list's UNDECIDED companion: how many rows only in one run the other left undecided
    (`undecided_a`: rows only in B that A left undecided; None without the companions)."""
    da, db = (Path(r) / results.TABLES for r in (run_a, run_b))
    if not ((da / f"{name}.csv").exists() and (db / f"{name}.csv").exists()):
        return None
    ta, tb = _table(da, name), _table(db, name)
    columns = _key(da, name) or _key(db, name)
    if columns is None:
        columns = (
            [c for c in _identity_columns(ta) if c in _identity_columns(tb)] if len(ta) and len(tb) else []
        )
        columns = columns or sorted(set(ta.columns) & set(tb.columns))
    keys_a, keys_b = _keys(ta, columns), _keys(tb, columns)
    only_a, only_b = keys_a - keys_b, keys_b - keys_a
    out = {
        "name": name,
        "columns": columns,
        "n_a": len(ta),
        "n_b": len(tb),
        "only_a": sorted(only_a),
        "only_b": sorted(only_b),
        "identical": keys_a == keys_b and len(ta) == len(tb),
        "undecided_a": None,
        "undecided_b": None,
    }
    companion = UNDECIDED.get(name)
    if companion and (da / f"{companion}.csv").exists() and (db / f"{companion}.csv").exists():
        where = _key(da, companion) or _key(db, companion) or [c for c in columns if c != "verdict"]
        left_a, left_b = _keys(_table(da, companion), where), _keys(_table(db, companion), where)
        at = [columns.index(c) for c in where]

        def count(rows: set[tuple], undecided: set[tuple]) -> int:
            return sum(tuple(r[i] for i in at) in undecided for r in rows)

        out["undecided_a"], out["undecided_b"] = count(only_b, left_a), count(only_a, left_b)
    return out


def _table(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv")


def _keys(table: pd.DataFrame, columns: list[str]) -> set[tuple]:
    return {tuple(map(_text, r)) for r in table[columns].itertuples(index=False)} if len(table) else set()


def _text(value) -> str:
    """128.0 and 128 name the same head dim."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@dataclass
class Agreement:
    pairs: dict[str, tuple[Path, Path]]  # notebook -> (run A, run B)
    verdicts: pd.DataFrame
    lists: list[dict] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)  # notebooks with a run in A only
    only_b: list[str] = field(default_factory=list)

    @property
    def judged(self) -> pd.DataFrame:
        return self.verdicts[self.verdicts.from_data]

    @property
    def agree_share(self) -> float:
        return float(self.judged.agree.mean()) if len(self.judged) else float("nan")

    def inconclusive_share(self, side: str) -> tuple[int, int]:
        """(inconclusive, judged from data) of run set `side` ("a" or "b")."""
        col = self.verdicts[f"verdict_{side}"]
        judged = col.isin(verdicts.FROM_DATA)
        return int((col[judged] == verdicts.INCONCLUSIVE).sum()), int(judged.sum())

    def per_notebook(self) -> pd.DataFrame:
        """Per notebook: claims judged from data, agreeing, inconclusive and the median interval width (% of
        the value) in A and in B."""
        out = []
        for notebook, part in self.verdicts.groupby("notebook", sort=True):
            row = {"notebook": notebook, "judged": int(part.from_data.sum())}
            row["agree"] = int(part[part.from_data].agree.sum())
            for side in ("a", "b"):
                col = part[f"verdict_{side}"]
                row[f"inconclusive_{side}"] = int((col == verdicts.INCONCLUSIVE).sum())
                row[f"median_width_{side}"] = float(
                    part[col.isin(verdicts.FROM_DATA)][f"width_{side}"].median()
                )
            out.append(row)
        return pd.DataFrame(out)

    def summary_lines(self) -> list[str]:
        j = self.judged
        lines = [
            f"{len(self.pairs)} notebooks in both ({', '.join(self.pairs)})"
            + (f"; only in A: {', '.join(self.only_a)}" if self.only_a else "")
            + (f"; only in B: {', '.join(self.only_b)}" if self.only_b else "")
            + ".",
            f"Verdicts judged from data in either run: {int(j.agree.sum())} of {len(j)} agree "
            f"({100 * self.agree_share:.0f}%); all claims: {int(self.verdicts.agree.sum())} of "
            f"{len(self.verdicts)} agree (scope and not-measured included).",
        ]
        for side in ("a", "b"):
            n, d = self.inconclusive_share(side)
            lines.append(
                f"Inconclusive in {side.upper()}: {n} of {d} claims judged from data ({100 * n / max(d, 1):.0f}%)."
            )
        lines += [list_line(d) for d in self.lists]
        for r in self.per_notebook().itertuples():
            lines.append(
                f"  {r.notebook}: {r.agree} of {r.judged} agree; inconclusive A {r.inconclusive_a}, B "
                f"{r.inconclusive_b}; median interval width A {r.median_width_a:.3g}%, B {r.median_width_b:.3g}%"
            )
        for r in j[~j.agree].itertuples():
            lines.append(f"  differs: {r.notebook} {r.id}: A {r.verdict_a or '-'}, B {r.verdict_b or '-'}")
        return lines


def list_line(d: dict) -> str:
    """One saved list's comparison in words, with how many differences the other run left undecided."""
    if d["identical"]:
        return f"Saved list '{d['name']}': {d['n_a']} in A, {d['n_b']} in B; identical."
    text = f"Saved list '{d['name']}': {d['n_a']} in A, {d['n_b']} in B; {len(d['only_a'])} only in A"
    if d.get("undecided_b") is not None:
        text += f" ({d['undecided_b']} of them undecided in B)"
    text += f", {len(d['only_b'])} only in B"
    if d.get("undecided_a") is not None:
        text += f" ({d['undecided_a']} undecided in A)"
    return text + "."


def agreement(
    set_a: dict[str, Path], set_b: dict[str, Path], lists: tuple[str, ...] = ("cliffs",)
) -> Agreement:
    """Pair two run sets by notebook and compare their verdicts and saved lists."""
    pairs = {nb: (set_a[nb], set_b[nb]) for nb in set_a if nb in set_b}
    if not pairs:
        raise ValueError("the two run sets share no notebook")
    tables = [verdict_table(a, b) for a, b in pairs.values()]
    diffs = [d for a, b in pairs.values() for name in lists if (d := list_difference(a, b, name)) is not None]
    return Agreement(
        pairs,
        pd.concat(tables, ignore_index=True),
        diffs,
        sorted(set(set_a) - set(set_b)),
        sorted(set(set_b) - set(set_a)),
    )
