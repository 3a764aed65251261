"""The code behind notebooks/*_kv_cache.py: measuring, analysis and findings."""
