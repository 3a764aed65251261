"""Where a published claim applies, computed per run from the claim's stated scope (data/published/*.yaml).

A claim's `scope` names what it is about: `backend` (MLX backends, e.g. [metal] for a bug in Metal's SDPA
kernels), `hardware: apple` (a figure of Apple silicon), `chip` (one chip, e.g. "M4 Max", matched at the end of
the device name, so "M4" is not an M4 Max), `min_params` (a model large enough to be bandwidth-bound, not a
test-sized preset) and `about` (how a reason names it). A claim without a scope applies everywhere.
`applies` compares that with the run's backend and device (and the model judged); `settle` turns the verdicts
of claims outside their scope into "does not apply", with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from mlx_workbook.core import published, verdicts


@dataclass(frozen=True)
class Where:
    """The part of a run's environment a scope is judged against."""

    backend: str
    device: str

    @property
    def apple(self) -> bool:
        return self.backend == "metal" or self.device.lower().startswith("apple")


@dataclass(frozen=True)
class Model:
    """The model a claim is judged on (for `min_params`)."""

    name: str
    params: float


def where(environment) -> Where:
    """A Where from an env.Environment, a mapping, or a measurements frame (every row carries both columns)."""
    if hasattr(environment, "columns"):  # a DataFrame of measurement rows
        if environment.empty or not {"backend", "device"} <= set(environment.columns):
            raise ValueError("measurement rows without backend and device columns: no run to judge scope on")
        row = environment.iloc[0]
        return Where(str(row["backend"]), str(row["device"]))
    if isinstance(environment, Mapping):
        return Where(str(environment["backend"]), str(environment["device"]))
    return Where(str(environment.backend), str(environment.device))


def _claim(claim) -> dict:
    return published.claim(claim) if isinstance(claim, str) else claim


def applies(claim, environment, model: Model | None = None) -> tuple[bool, str]:
    """(True, "") when the run is inside the claim's scope, else (False, why not)."""
    c, here = _claim(claim), where(environment)
    scope = c.get("scope") or {}
    about = scope.get("about") or c.get("hardware")
    run = f"this run is on {here.device} ({here.backend})"
    if scope.get("hardware") == "apple" and not here.apple:
        return False, f"a figure of Apple silicon ({about}); {run}"
    chip = scope.get("chip")
    # The device name ends with the chip ("Apple M4 Max"), so "M4" does not match an M4 Max.
    if chip and not here.device.lower().endswith(chip.lower()):
        return False, f"a figure of the {chip} ({about}); {run}"
    backends = scope.get("backend")
    if backends and here.backend not in backends:
        return False, f"a claim about MLX's {' or '.join(backends)} backend ({about}); {run}"
    least = scope.get("min_params")
    if least and model is not None and model.params < float(least):
        return False, (
            f"needs a model of at least {float(least):.0e} parameters, whose weights dwarf the caches; judged "
            f"here on {model.name} ({model.params:.2g} parameters)"
        )
    return True, ""


def settle(findings: Iterable, environment, models: Mapping[str, Model] | Model | None = None) -> list:
    """The findings with those of published claims outside their scope marked "does not apply" (reason first,
    the notebook's own sentence kept after it). `models`: the model each claim was judged on (one for all, or
    per claim id)."""
    known = {c["id"] for c in published.claims()}
    out = []
    for f in findings:
        if f.id in known:
            model = models.get(f.id) if isinstance(models, Mapping) else models
            ok, why = applies(f.id, environment, model)
            if not ok:
                # The sentence may end with the verdict the comparison would give; here it judges nothing.
                text = f.statement
                if text.endswith(f"{f.verdict}."):
                    text = text[: -len(f"{f.verdict}.")] + "not judged here."
                f = replace(f, verdict=verdicts.NOT_APPLICABLE, statement=f"Does not apply: {why}. {text}")
        out.append(f)
    return out
