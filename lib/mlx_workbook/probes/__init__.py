"""Self-contained probe scripts: each imports only mlx and the standard library, so it runs unchanged under
other MLX versions (see versions.py), and the workbook imports the same code in-process."""
