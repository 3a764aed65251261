"""The code behind notebooks/*_bandwidth.py: measuring, analysis and findings."""
