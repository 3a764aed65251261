"""The MLX performance workbook's shared generation and profiling library.

Notebooks stay thin: they pick parameters, call into these modules and plot what was stored.
"""

import warnings
from pathlib import Path

# In Jupyter without ipywidgets, tqdm.auto (imported by mlx-lm's dependencies) warns "IProgress not found" in a
# red box and then uses its text bar anyway: ask for the text bar, without the warning.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"

# The repository root (lib/mlx_workbook/ -> ../..): data/, profiles/ and reports/ live there.
ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "data"
REPORTS_DIR = ROOT / "reports"
