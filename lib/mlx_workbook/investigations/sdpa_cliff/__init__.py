"""The code behind notebooks/*_sdpa_cliff.py: measuring, analysis and findings."""
