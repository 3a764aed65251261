"""Models: shape-faithful presets at random weights, or real checkpoints through `mlx_lm.load`, one interface.

Everything about size is known before any weight is materialized: MLX arrays are lazy, so a model built
from its config (and quantized) has exact shapes and dtypes, hence exact bytes, at no cost. Bad input
(unknown preset, unsupported bits, a missing folder, a model larger than the device's memory) fails here,
with one clear message, before any heavy work.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import yaml
from mlx.utils import tree_flatten, tree_map_with_path

from mlx_workbook.core import env as envmod

DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16, "float32": mx.float32}
QUANT_BITS = (2, 3, 4, 5, 6, 8)  # MLX's affine quantization
GROUP_SIZES = (32, 64, 128)
# Leave room for activations, the KV cache and the allocator's own cache.
MEMORY_HEADROOM = 0.85


class ModelError(ValueError):
    """Bad model input: raised before any weight is created or read."""


@dataclass
class LoadedModel:
    model: nn.Module
    name: str  # preset name or checkpoint path / hub id
    source: str  # "preset" or "checkpoint"
    config: dict
    dtype: str
    bits: int | None  # None for unquantized
    group_size: int | None
    tokenizer: object | None = None  # mlx-lm TokenizerWrapper for checkpoints; presets work on token ids
    info: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """e.g. 'qwen3-0.6b 4-bit' or 'qwen3-0.6b bf16'."""
        return f"{self.name} {self.bits}-bit" if self.bits else f"{self.name} {_short_dtype(self.dtype)}"

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size") or self.config.get("text_config", {}).get("vocab_size"))

    @property
    def num_layers(self) -> int:
        return len(self.model.layers)

    def weight_bytes(self) -> int:
        return weight_bytes(self.model)

    def describe(self) -> dict:
        """Columns that identify this model in every measurement row."""
        return {
            "model": self.name,
            "model_source": self.source,
            "dtype": self.dtype,
            "bits": self.bits or 0,
            "group_size": self.group_size or 0,
            "weight_bytes": self.weight_bytes(),
        }


def _short_dtype(dtype: str) -> str:
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(dtype, dtype)


@lru_cache(maxsize=1)
def presets() -> dict[str, dict]:
    with open(Path(__file__).with_name("presets.yaml")) as f:
        return yaml.safe_load(f)


def preset_config(name: str) -> dict:
    table = presets()
    if name not in table:
        raise ModelError(f"unknown preset {name!r}; known presets: {', '.join(table)}")
    return dict(table[name]["config"])


# --- byte accounting ---------------------------------------------------------------------------------------


def weight_bytes(model: nn.Module) -> int:
    """Exact bytes of every parameter (quantized weights, scales and biases included); lazy arrays count too."""
    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def weight_breakdown(model: nn.Module) -> dict[str, int]:
    """Bytes by role: embedding, lm_head, attention, mlp (dense), experts (MoE), router, norms, other."""
    out: dict[str, int] = {}
    for path, v in tree_flatten(model.parameters()):
        out[_role(path)] = out.get(_role(path), 0) + v.nbytes
    return out


def _role(path: str) -> str:
    p = path.lower()
    if "embed_tokens" in p or p.startswith("wte"):
        return "embedding"
    if "lm_head" in p:
        return "lm_head"
    if "norm" in p:
        return "norms"
    if "switch_mlp" in p or ".experts" in p:
        return "experts"
    if ".gate." in p and ("mlp" in p or "block_sparse_moe" in p):
        return "router"
    if "self_attn" in p or "attention" in p:
        return "attention"
    if "mlp" in p or "feed_forward" in p:
        return "mlp"
    return "other"


def check_fits(nbytes: int, what: str, environment: envmod.Environment | None = None) -> None:
    environment = environment or envmod.capture()
    budget = environment.memory_bytes * MEMORY_HEADROOM
    if environment.memory_bytes and nbytes > budget:
        raise ModelError(
            f"{what} needs {nbytes / 1e9:.1f} GB of weights, more than {MEMORY_HEADROOM:.0%} of the "
            f"{environment.memory_bytes / 1e9:.1f} GB this device ({environment.device}) has; "
            "pick a smaller preset or fewer bits"
        )


# --- building ----------------------------------------------------------------------------------------------


def check_bits(bits: int | None, context: str = "") -> None:
    """A bit width as parameters give it: None or 0 means unquantized, anything else must be MLX's."""
    if bits and bits not in QUANT_BITS:
        raise ModelError(
            f"{context + ': ' if context else ''}bits={bits} is not supported by MLX's affine "
            f"quantization; use one of {QUANT_BITS}, or None / 0 for unquantized weights"
        )


def validate(dtype: str, bits: int | None, group_size: int) -> None:
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    check_bits(bits)
    if group_size not in GROUP_SIZES:
        raise ModelError(f"group_size={group_size} is not supported; use one of {GROUP_SIZES}")


def is_moe(config: dict) -> bool:
    return bool(config.get("num_experts") or config.get("num_local_experts"))


def check_backend_support(config: dict, dtype: str, bits: int | None, name: str) -> None:
    """Known gaps of a backend, caught before building (rather than deep inside the first forward pass)."""
    if is_moe(config) and bits is None and dtype != "float32" and envmod.capture().backend == "cpu":
        raise ModelError(
            f"{name}: MLX's CPU backend runs unquantized MoE experts (GatherMM) in float32 only; "
            "use dtype='float32' or quantize (bits=4/8) on the CPU"
        )


def _model_classes(config: dict):
    from mlx_lm.utils import _get_classes  # mlx-lm's own config -> class mapping, as mlx_lm.load uses

    return _get_classes(config)


def _random_like(path: str, value: mx.array, dtype) -> mx.array:
    # Matrices get N(0, 0.02) like the usual LLM init; 1-D parameters (norm gains, biases) keep their init.
    if value.ndim >= 2:
        return (mx.random.normal(value.shape, dtype=dtype) * 0.02).astype(dtype)
    return value.astype(dtype)


def _quantize(model: nn.Module, config: dict, bits: int, group_size: int) -> dict:
    from mlx_lm.utils import quantize_model

    with contextlib.redirect_stdout(io.StringIO()):  # quantize_model prints an [INFO] line
        _, qconfig = quantize_model(model, config, group_size=group_size, bits=bits)
    return qconfig


def _materialize(model: nn.Module) -> None:
    # One layer at a time, so a quantized model never holds all of its unquantized weights at once.
    for layer in model.layers:
        mx.eval(layer.parameters())
    mx.eval(model.parameters())


def build_preset(
    name: str,
    *,
    dtype: str = "bfloat16",
    bits: int | None = None,
    group_size: int = 64,
    seed: int = 0,
    materialize: bool = True,
) -> LoadedModel:
    """A preset at random weights in `dtype`, quantized with mlx-lm's `quantize_model` when `bits` is set."""
    validate(dtype, bits, group_size)
    config = preset_config(name)
    check_backend_support(config, dtype, bits, name)
    model_cls, args_cls = _model_classes(config)
    mx.random.seed(seed)
    model = model_cls(args_cls.from_dict(config))
    model.update(tree_map_with_path(lambda p, v: _random_like(p, v, DTYPES[dtype]), model.parameters()))
    if bits is not None:
        config = _quantize(model, config, bits, group_size)
    loaded = LoadedModel(
        model=model,
        name=name,
        source="preset",
        config=config,
        dtype=dtype,
        bits=bits,
        group_size=group_size if bits else None,
        info={"about": presets()[name]["about"]},
    )
    if materialize:  # a lazy build (byte accounting only) may describe a model larger than this device
        check_fits(loaded.weight_bytes(), loaded.label)  # exact bytes, still before any weight exists
        _materialize(model)
    return loaded


def check_folder(path: Path, what: str = "model folder") -> int:
    """A local model folder as mlx-lm reads it (config.json and .safetensors weights): its weight bytes, or
    one clear ModelError naming what is missing."""
    if not path.is_dir():
        raise ModelError(f"{what} not found: {path} is not a folder")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json: not an MLX / Hugging Face model folder")
    files = list(path.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{path} has no .safetensors weights")
    return sum(f.stat().st_size for f in files)


def load_checkpoint(
    path_or_repo: str, *, lazy: bool = False, quantize_bits: int | None = None, group_size: int = 64
) -> LoadedModel:
    """A real checkpoint (local folder or hub id) through `mlx_lm.load`.

    `quantize_bits` quantizes an unquantized checkpoint right after loading ("on the fly"), with the same
    `quantize_model` call presets use, so it ends up with the same weights as a checkpoint saved quantized.
    """
    if quantize_bits is not None:
        loaded = load_checkpoint(path_or_repo, lazy=True)
        return quantize_copy(loaded, quantize_bits, group_size, consume=True)
    from mlx_lm import load

    path = Path(path_or_repo).expanduser()
    if path.exists():
        check_fits(check_folder(path), str(path))
        source = str(path)
    elif path_or_repo.count("/") == 1 and not path_or_repo.startswith((".", "/", "~")):
        source = path_or_repo  # a hub id: mlx_lm.load downloads it (fails clearly without a network)
    else:
        raise ModelError(f"model folder not found: {path_or_repo}")
    try:
        model, tokenizer, config = load(source, lazy=lazy, return_config=True)
    except Exception as exc:  # a hub id with no network, a broken folder: one message, the cause attached
        raise ModelError(f"could not load {path_or_repo!r} with mlx_lm.load: {exc}") from exc
    q = config.get("quantization") or {}
    dtype = str(next(v.dtype for _, v in tree_flatten(model.parameters()) if v.dtype in DTYPES.values()))
    return LoadedModel(
        model=model,
        name=path_or_repo,
        source="checkpoint",
        config=config,
        dtype=dtype.replace("mlx.core.", ""),
        bits=q.get("bits"),
        group_size=q.get("group_size"),
        tokenizer=tokenizer,
    )


def load(
    spec: str, *, dtype: str = "bfloat16", bits: int | None = None, group_size: int = 64, seed: int = 0
) -> LoadedModel:
    """One entry point: a preset name builds a preset; anything else is a checkpoint folder or hub id
    (`bits` then quantizes it at load time; `dtype` and `seed` apply to presets only)."""
    if spec in presets():
        return build_preset(spec, dtype=dtype, bits=bits, group_size=group_size, seed=seed)
    if "/" not in spec and not Path(spec).exists():
        raise ModelError(
            f"unknown preset {spec!r} (and no such folder); known presets: {', '.join(presets())}"
        )
    return load_checkpoint(spec, quantize_bits=bits, group_size=group_size)


def quantize_copy(
    loaded: LoadedModel, bits: int, group_size: int = 64, *, consume: bool = False, materialize: bool = True
) -> LoadedModel:
    """A quantized twin of an unquantized model (preset or checkpoint), made with `quantize_model`.

    The twin starts from the same arrays (no copy), so the source stays usable and several bit widths can
    be made from one build. `consume=True` gives the source's weights up instead (its `.model` becomes None),
    so they are freed layer by layer as the twin is materialized: only the twin then has to fit in memory.
    """
    if loaded.bits:
        raise ModelError(f"{loaded.label} is already quantized; quantize an unquantized model")
    validate(loaded.dtype, bits, group_size)
    model_cls, args_cls = _model_classes(loaded.config)
    model = model_cls(args_cls.from_dict(loaded.config))
    model.update(loaded.model.parameters())
    config = _quantize(model, dict(loaded.config), bits, group_size)
    twin = LoadedModel(
        model=model,
        name=loaded.name,
        source=loaded.source,
        config=config,
        dtype=loaded.dtype,
        bits=bits,
        group_size=group_size,
        tokenizer=loaded.tokenizer,
        info=dict(loaded.info),
    )
    source_bytes = 0 if consume else loaded.weight_bytes()
    if consume:
        loaded.model = None
    if materialize:
        check_fits(
            source_bytes + twin.weight_bytes(), twin.label + ("" if consume else " (beside its source)")
        )
        _materialize(model)
    return twin


def save_checkpoint(loaded: LoadedModel, path: str | Path, tokenizer=None) -> Path:
    """Write weights + config.json (+ tokenizer) so that `mlx_lm.load(path)` reads the model back."""
    from mlx_lm.utils import save_config, save_model

    path = Path(path)
    save_model(path, loaded.model)
    save_config(dict(loaded.config), config_path=path / "config.json")
    tokenizer = tokenizer or loaded.tokenizer
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    return path


def offline_tokenizer(vocab_size: int):
    """A tokenizer for token ids 0..vocab_size-1 built without any download: word-level ids, byte-level decoder."""
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size - 2)}
    vocab["<unk>"], vocab["</s>"] = vocab_size - 2, vocab_size - 1
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tok.decoder = decoders.ByteLevel()  # mlx-lm picks its streaming BPE detokenizer for this decoder
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>")


def random_prompt(loaded: LoadedModel, n_tokens: int, seed: int = 0) -> mx.array:
    """Token ids drawn uniformly from the vocabulary, as `mlx_lm.benchmark` does."""
    if n_tokens < 1:
        raise ModelError(f"a prompt needs at least one token, got {n_tokens}")
    key = mx.random.key(seed)
    # int(): a length read from a table may be a float (2048.0), which mx.random.randint's shape refuses
    return mx.random.randint(0, loaded.vocab_size, (int(n_tokens),), key=key).astype(mx.uint32)


def describe_config(config: dict) -> dict:
    """The architecture numbers people ask about, from a config."""
    keys = [
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "intermediate_size",
        "vocab_size",
        "num_experts",
        "num_local_experts",
        "num_experts_per_tok",
        "moe_intermediate_size",
        "tie_word_embeddings",
    ]
    return {k: config[k] for k in keys if k in config}


def config_json(loaded: LoadedModel) -> str:
    return json.dumps(describe_config(loaded.config), sort_keys=True)
