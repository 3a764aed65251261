"""Roofline: bytes moved per decoded token, the bandwidth-bound ceiling, and how close decode gets to it.

One decode step reads every weight it uses once (for an MoE only the routed experts; for the embedding one
row per token, but the whole matrix when it doubles as the output head), reads the KV cache of every token
before it and writes its own K and V. At a sustained bandwidth B, no decoder can beat B / bytes per token:
that is the roofline, and measured / roofline is the efficiency.
"""

from __future__ import annotations

import pandas as pd

from mlx_workbook import models
from mlx_workbook.core import env as envmod

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

    lazy = (
        models.build_preset(loaded.name, dtype=loaded.dtype, materialize=False)
        if loaded.source == "preset"
        else loaded
    )
    return sum(v.size for _, v in tree_flatten(lazy.model.parameters())) if lazy.bits is None else 0


# --- configurations -----------------------------------------------------------------------------------------


def quant_label(bits: int, dtype: str) -> str:
    return f"{bits}-bit" if bits else models._short_dtype(dtype)


def base_dtype(config: dict, dtype: str) -> str:
    """MLX's CPU backend runs unquantized MoE experts in float32 only (models.check_backend_support)."""
    return "float32" if models.is_moe(config) and envmod.capture().backend == "cpu" else dtype


def accounting(
    configs: list[tuple[str, list[int]]], context: float, *, dtype: str = "bfloat16", group_size: int = 64
) -> pd.DataFrame:
    """Bytes per decoded token of every (preset, widths) configuration, from lazy builds (nothing allocated).

    One row per label: model, bits, weight_bytes (stored) and bytes_per_step's parts at `context`.
    """
    rows = []
    for name, widths in configs:
        for bits in widths:
            lm = models.build_preset(
                name,
                dtype=base_dtype(models.preset_config(name), dtype),
                bits=bits or None,
                group_size=group_size,
                materialize=False,
            )
            rows.append(
                {
                    "label": lm.label,
                    "model": name,
                    "bits": bits,
                    "weight_bytes": lm.weight_bytes(),
                    **bytes_per_step(lm, context),
                }
            )
    return pd.DataFrame(rows).drop_duplicates("label").reset_index(drop=True)
