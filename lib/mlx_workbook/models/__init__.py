"""Models: shape-faithful presets at random weights, real checkpoints through mlx_lm.load, byte accounting
(`loading`) and the roofline arithmetic built on it (`roofline`). Imports only `core`.

The package re-exports `loading`'s interface, so callers write `models.build_preset(...)`.
"""

from mlx_workbook.models.loading import (  # noqa: F401
    DTYPES,
    GROUP_SIZES,
    MEMORY_HEADROOM,
    QUANT_BITS,
    LoadedModel,
    ModelError,
    _short_dtype,
    build_preset,
    check_backend_support,
    check_bits,
    check_fits,
    config_json,
    describe_config,
    is_moe,
    load,
    load_checkpoint,
    offline_tokenizer,
    preset_config,
    presets,
    quantize_copy,
    random_prompt,
    save_checkpoint,
    validate,
    weight_breakdown,
    weight_bytes,
)
