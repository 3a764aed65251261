"""The code behind notebooks/00_machine.py: the machine's charts and findings (the probes are probes.kernels)."""
