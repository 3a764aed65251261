"""The code behind notebooks/07_serving.py: mlx_lm.server's lifecycle (server), an asynchronous streaming load
generator (loadgen), the measurements (measure), vLLM-style metrics and charts (analysis) and findings."""
