"""Shared probes, used by more than one investigation: decode loops and sampling (`decode`, `loops` with
its clocks and prefill, `sampling`), memory and matmul kernels (`kernels`), per-op timings (`ops`), and the
runner for other MLX versions (`versions`) with its self-contained probe script (`sdpa_probe`, which imports
only mlx and the standard library so it runs unchanged under other MLX versions). Imports `core` and `models`."""
