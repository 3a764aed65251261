"""The MLX performance workbook's shared generation and profiling library.

Notebooks stay thin: they pick parameters, call into these modules and plot what was stored.
"""

from pathlib import Path

__version__ = "0.1.0"

# The repository root (lib/mlx_workbook/ -> ../..): data/, profiles/ and reports/ live there.
ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "data"
REPORTS_DIR = ROOT / "reports"
