"""Roofline: bytes moved per decoded token, the bandwidth-bound ceiling, and how close decode gets to it.

One decode step reads every weight it uses once (for an MoE only the routed experts; for the embedding one
row per token, but the whole matrix when it doubles as the output head), reads the KV cache of every token
before it and writes its own K and V. At a sustained bandwidth B, no decoder can beat B / bytes per token:
that is the roofline, and measured / roofline is the efficiency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import REPORTS_DIR, kernels, measure, models, published, results
from . import env as envmod

GB = 1e9


# --- bytes per token -----------------------------------------------------------------------------------------


def head_dim(config: dict) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def kv_bytes_per_position(config: dict, dtype: str) -> int:
    """K and V of one token over all layers, in the activation dtype (the cache's dtype in mlx-lm)."""
    kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim(config) * models.DTYPES[dtype].size


def active_expert_fraction(config: dict, batch: int = 1) -> float:
    """Share of each layer's experts one step reads: k/E for one sequence; for a batch, the expected share
    of distinct experts when each token picks k of E uniformly (1 - (1 - k/E)^batch)."""
    experts = config.get("num_experts") or config.get("num_local_experts")
    if not experts:
        return 1.0
    return 1.0 - (1.0 - config["num_experts_per_tok"] / experts) ** batch


def bytes_per_step(loaded: models.LoadedModel, context: float, batch: int = 1) -> dict[str, float]:
    """Bytes one decode step moves for `batch` sequences at `context` cached tokens each, by part."""
    parts = models.weight_breakdown(loaded.model)
    embedding = parts.get("embedding", 0)
    tied = "lm_head" not in parts  # the embedding matrix is also the output projection, read in full
    kv = kv_bytes_per_position(loaded.config, loaded.dtype)
    out = {
        "embedding_rows": embedding / loaded.vocab_size * batch,
        "lm_head": embedding if tied else parts["lm_head"],
        "dense_layers": sum(parts.get(k, 0) for k in ("attention", "mlp", "router", "norms", "other")),
        "experts_active": parts.get("experts", 0) * active_expert_fraction(loaded.config, batch),
        "kv_read": kv * context * batch,
        "kv_written": kv * batch,
        "logits_written": loaded.vocab_size * models.DTYPES[loaded.dtype].size * batch,
    }
    out["weights"] = out["embedding_rows"] + out["lm_head"] + out["dense_layers"] + out["experts_active"]
    out["total"] = out["weights"] + out["kv_read"] + out["kv_written"] + out["logits_written"]
    return out


def mean_context(prompt_tokens: int, gen_tokens: int) -> float:
    """Average number of cached tokens over a generation's decode steps."""
    return prompt_tokens + gen_tokens / 2


def roofline_tps(step_bytes: float, bandwidth_gbs: float, batch: int = 1) -> float:
    return batch * bandwidth_gbs * GB / step_bytes


def parameter_count(loaded: models.LoadedModel) -> int:
    """Parameters of the unquantized architecture (built lazily: costs nothing)."""
    from mlx.utils import tree_flatten

    lazy = (models.build_preset(loaded.name, dtype=loaded.dtype, materialize=False)
            if loaded.source == "preset" else loaded)
    return sum(v.size for _, v in tree_flatten(lazy.model.parameters())) if lazy.bits is None else 0


# --- the bandwidth ceiling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    gbs: float
    low: float
    high: float
    source: str  # where the number comes from, in words
    published_gbs: float | None = None  # the vendor's peak, a second ceiling
    published_name: str | None = None


def measured_bandwidth(run: results.Run, *, mode: str = "auto", roots: list[Path] | None = None,
                       sizes_mb: list[float] = (64, 256), repeats: int = 5) -> Ceiling:
    """00_machine's latest ok run on this device (mode 'auto'), else a quick probe now (recorded in `run`)."""
    if mode not in ("auto", "measure"):
        raise ValueError(f"bandwidth_source must be 'auto' or 'measure', got {mode!r}")
    peaks = envmod.published_peaks(run.environment.device) or {}
    extra = {"published_gbs": peaks.get("peak_bandwidth_gbs"), "published_name": peaks.get("name")}
    for root in (roots or [REPORTS_DIR]) if mode == "auto" else []:
        found = results.latest_run("00_machine", device=run.environment.device, root=root) if root.exists() else None
        if found:
            f = next((f for f in results.read_summary(found)["findings"] if f["id"] == "measured_bandwidth_gbs"), None)
            if f and f.get("measured"):
                m = f["measured"]
                return Ceiling(m["value"], m["low"], m["high"], f"00_machine run {found.name} "
                               f"({m.get('probe', 'best')} probe)", **extra)
    kernels.bandwidth_sweep(run, sizes_mb=list(sizes_mb), probes=["read", "copy"], repeats=repeats)
    probe, s = kernels.bandwidth_ceiling(run.measurements)
    return Ceiling(s.median, s.low, s.high, f"measured here with kernels.bandwidth_sweep ({probe} probe, "
                   f"{max(sizes_mb):g} MB), no 00_machine run for this device", **extra)


# --- configurations -----------------------------------------------------------------------------------------


def quant_label(bits: int, dtype: str) -> str:
    return f"{bits}-bit" if bits else models._short_dtype(dtype)


def base_dtype(config: dict, dtype: str) -> str:
    """MLX's CPU backend runs unquantized MoE experts in float32 only (models.check_backend_support)."""
    return "float32" if models.is_moe(config) and envmod.capture().backend == "cpu" else dtype


# --- analysis ------------------------------------------------------------------------------------------------


def decode_table(df: pd.DataFrame, experiment: str = "decode") -> pd.DataFrame:
    """One row per configuration: medians and 95% intervals of decode/prompt tok/s and efficiency."""
    rows = []
    d = df[df.experiment == experiment]
    for label, g in d.groupby("label", sort=False):
        first = g.iloc[0]
        row = {k: first[k] for k in ("label", "model", "quant", "bits", "dtype", "moe", "params", "weight_bytes",
                                     "bytes_per_token", "weights_read_bytes", "kv_bytes", "roofline_tps")}
        for metric in ("decode_tps", "steady_tps", "prompt_tps", "ms_per_token", "efficiency", "peak_memory_gb"):
            s = measure.summarize(g[g.metric == metric].value)
            row.update({metric: s.median, f"{metric}_low": s.low, f"{metric}_high": s.high})
        rows.append(row)
    return pd.DataFrame(rows)


def classify(table: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Why each configuration sits where it does.

    bandwidth-bound: efficiency >= threshold (the bytes explain most of the step);
    latency-bound: below it, and no faster than 1.5x the quickest step of the sweep (a fixed per-token cost:
    kernel launches, host work, sync), so fewer bytes would not help;
    kernel-bound: a quantized variant below the threshold and below its unquantized twin's efficiency (the
    dequantizing kernels, not memory, set the pace); below-roofline otherwise.
    """
    out = table.copy()
    floor = out.ms_per_token.min()
    unquantized = out[out.bits == 0].set_index("model").efficiency
    def regime(r):
        if r.efficiency >= threshold:
            return "bandwidth-bound"
        if r.ms_per_token <= 1.5 * floor:
            return "latency-bound"
        if r.bits and r.model in unquantized and r.efficiency < unquantized[r.model]:
            return "kernel-bound"
        return "below roofline"
    out["regime"] = out.apply(regime, axis=1)
    out["floor_ms"] = floor
    return out


def loglog_slope(table: pd.DataFrame) -> dict:
    """Slope of log(ms per token) on log(bytes per token): 1 when time is proportional to bytes."""
    return measure.fit_slope(np.log(table.bytes_per_token), np.log(table.ms_per_token))


def size_label(model: str) -> str:
    """'qwen2.5-7b' -> '7B' (the size the write-ups name models by)."""
    m = re.search(r"(\d+(?:\.\d+)?)b(?:-|$)", model)
    return f"{m.group(1)}B" if m else model


def original_machines() -> pd.DataFrame:
    """The original write-up's chips with their published bandwidths (machine, bandwidth_low/high GB/s)."""
    est = published.table("004_bandwidth", "bandwidth_estimates")
    return pd.DataFrame({"machine": est.chip, "bandwidth_low": est.bandwidth_gbs_low,
                         "bandwidth_high": est.bandwidth_gbs_high, "here": False})


# quick_reference names hardware by machine; bandwidth_estimates by chip: one name per chip here.
_CHIP_OF = {"M4 Air 32GB": "M4 (Air/Mini)", "M4 Pro 48GB": "M4 Pro", "M4 Max 128GB": "M4 Max"}


def published_decode() -> pd.DataFrame:
    """Every published 4-bit decode tok/s (measured or estimated) by chip and model size."""
    quick = published.table("004_bandwidth", "quick_reference")
    rows = [{"machine": _CHIP_OF[r.hardware], "size": r.model, "tok_s_low": r.tok_s_low, "tok_s_high": r.tok_s_high,
             "basis": r.basis} for r in quick.itertuples()]
    rows += [{"machine": "M4 Max", "size": r.model, "tok_s_low": r.tok_s, "tok_s_high": r.tok_s,
              "basis": "measured, scaling table"} for r in published.table("004_bandwidth", "model_size_scaling").itertuples()]
    for r in published.table("004_bandwidth", "bandwidth_estimates").itertuples():
        rows += [{"machine": r.chip, "size": "7B", "tok_s_low": r.est_7b_tok_s_low, "tok_s_high": r.est_7b_tok_s_high,
                  "basis": "estimate"}]
    return pd.DataFrame(rows)


def _published_text(pub: pd.DataFrame) -> str:
    return "; ".join((f"{r.tok_s_low:g}" if r.tok_s_low == r.tok_s_high else f"{r.tok_s_low:g}-{r.tok_s_high:g}")
                     + f" ({r.basis})" for r in pub.itertuples() if pd.notna(r.tok_s_low))


def projection(configs: pd.DataFrame, machines: pd.DataFrame, pub: pd.DataFrame) -> pd.DataFrame:
    """Predicted tok/s = bandwidth x efficiency / bytes per token for every (machine, configuration).

    `configs`: label, model, bytes_per_token, efficiency (the measured one to apply), decode_tps (measured
    here, shown on this machine's rows); `machines`: machine, bandwidth_low, bandwidth_high, here;
    `pub`: published_decode() (reference only, never an input of the prediction).
    """
    rows = []
    for m in machines.itertuples():
        for c in configs.itertuples():
            ceiling_low, ceiling_high = (m.bandwidth_low * GB / c.bytes_per_token, m.bandwidth_high * GB / c.bytes_per_token)
            same = pub[(pub.machine == m.machine) & (pub["size"] == size_label(c.model))]
            rows.append({"machine": m.machine, "bandwidth_gbs": (f"{m.bandwidth_low:.0f}" if m.bandwidth_low == m.bandwidth_high
                                                                 else f"{m.bandwidth_low:.0f}-{m.bandwidth_high:.0f}"),
                         "config": c.label, "bytes_per_token_gb": c.bytes_per_token / GB,
                         "efficiency_used": c.efficiency, "roofline_tps": ceiling_high,
                         "predicted_tps_low": ceiling_low * c.efficiency, "predicted_tps_high": ceiling_high * c.efficiency,
                         "measured_here_tps": c.decode_tps if m.here else np.nan,
                         "published_tps": _published_text(same)})
    return pd.DataFrame(rows)
